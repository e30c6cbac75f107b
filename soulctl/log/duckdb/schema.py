"""Named, ordered migrations of the log database, recorded in the `migrations` table.

Each migration runs once, in order, inside the transaction that records it. The embedding
column is a fixed-size array whose length is the embedder's dimension when the store is made.
"""

from __future__ import annotations

from typing import Callable

from soulctl.log.duckdb.connection import rollback


def packets_table(dim: int) -> str:
    """The packets table: one definition, used by the first migration and by reembed."""
    return f"""
        CREATE TABLE packets (
            seq BIGINT PRIMARY KEY,           -- insertion order; the derived indexes' key
            id VARCHAR NOT NULL UNIQUE,       -- UUIDv7, time-ordered
            ts TIMESTAMP NOT NULL,            -- UTC
            session VARCHAR NOT NULL,
            role VARCHAR NOT NULL,
            prose VARCHAR NOT NULL,
            embedding FLOAT[{dim}] NOT NULL,
            embed_model VARCHAR NOT NULL,
            generation VARCHAR,
            corpus VARCHAR,
            resonance DOUBLE,
            resonance_source VARCHAR,
            parent VARCHAR,                   -- reply-to
            corrects VARCHAR,                 -- a correction names the packet it corrects
            meta JSON
        );
    """


# resonance is the latest explicit, combined or imported score; novelty and judge are signals
# that `resonate score` combines, not resonance themselves
LOG_VIEW = """
    CREATE OR REPLACE VIEW log AS
    SELECT p.* REPLACE (coalesce(m.score, p.resonance) AS resonance,
                        coalesce(m.source, p.resonance_source) AS resonance_source)
    FROM packets p
    LEFT JOIN (SELECT packet_id, arg_max(score, ts) AS score, arg_max(source, ts) AS source
               FROM resonance_marks WHERE source IN ('mark', 'combined', 'import')
               GROUP BY packet_id) m ON m.packet_id = p.id;
"""
# an explicit mark wins over any computed score, whenever either was made; among the same
# kind, the newest
MARK_RANK = "((source = 'mark')::INTEGER, ts)"
MARKS_WIN_VIEW = LOG_VIEW.replace("arg_max(score, ts)", f"arg_max(score, {MARK_RANK})").replace(
    "arg_max(source, ts)", f"arg_max(source, {MARK_RANK})")

MIGRATIONS: list[tuple[str, Callable[[int], str]]] = [
    ("0001_packets", lambda dim: packets_table(dim) + """
        CREATE TABLE store_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
    """),
    ("0002_resonance_marks", lambda dim: """
        CREATE TABLE resonance_marks (
            packet_id VARCHAR NOT NULL,
            score DOUBLE NOT NULL,
            source VARCHAR NOT NULL,          -- mark | novelty | judge | combined
            ts TIMESTAMP NOT NULL
        );
    """),
    ("0003_log_view", lambda dim: """
        -- packets with their latest resonance (a mark, else what was written with the packet)
        CREATE VIEW log AS
        SELECT p.* REPLACE (coalesce(m.score, p.resonance) AS resonance,
                            coalesce(m.source, p.resonance_source) AS resonance_source)
        FROM packets p
        LEFT JOIN (SELECT packet_id, arg_max(score, ts) AS score, arg_max(source, ts) AS source
                   FROM resonance_marks GROUP BY packet_id) m ON m.packet_id = p.id;
    """),
    ("0004_resonance_sources", lambda dim: LOG_VIEW),
    ("0005_memory_versions", lambda dim: """
        -- the notebook and the self-definition: every version kept, with author and reason
        CREATE TABLE memory_versions (
            kind VARCHAR NOT NULL,            -- notebook | self
            version INTEGER NOT NULL,
            ts TIMESTAMP NOT NULL,
            author VARCHAR NOT NULL,          -- user | soul | majordomo
            reason VARCHAR,
            text VARCHAR NOT NULL,
            PRIMARY KEY (kind, version)
        );
    """),
    # a checked rewrite's review: what it kept, superseded, restored, evicted (memory/review.py)
    ("0006_memory_review", lambda dim: "ALTER TABLE memory_versions ADD COLUMN review VARCHAR;"),
    ("0007_marks_win", lambda dim: MARKS_WIN_VIEW),
]


def apply(con, dim: int) -> list[str]:
    con.execute("CREATE TABLE IF NOT EXISTS migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    done = {row[0] for row in con.execute("SELECT name FROM migrations").fetchall()}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql(dim))
            con.execute("INSERT INTO migrations VALUES (?, now()::TIMESTAMP)", [name])
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
        applied.append(name)
    return applied


def pending(con) -> list[str]:
    try:
        done = {row[0] for row in con.execute("SELECT name FROM migrations").fetchall()}
    except Exception:
        return [name for name, _ in MIGRATIONS]
    return [name for name, _ in MIGRATIONS if name not in done]
