"""Named, ordered migrations of the Postgres log, recorded in `soulctl_migrations`; the same
tables as the DuckDB backend's, with pgvector's `vector(dim)`, a generated `tsvector` column
(GIN) for the keyword half and an HNSW index (cosine) for the vector half."""

from __future__ import annotations

from typing import Callable

from soulctl.log.postgres.connect import READER

LOG_VIEW = """
    CREATE VIEW log AS
    SELECT p.seq, p.id, p.ts, p.session, p.role, p.prose, p.embedding, p.embed_model,
           p.generation, p.corpus, coalesce(m.score, p.resonance) AS resonance,
           coalesce(m.source, p.resonance_source) AS resonance_source, p.parent, p.corrects, p.meta
    FROM packets p
    LEFT JOIN LATERAL (SELECT r.score, r.source FROM resonance_marks r
                       WHERE r.packet_id = p.id AND r.source IN ('mark', 'combined', 'import')
                       ORDER BY r.ts DESC, r.n DESC LIMIT 1) m ON true;
"""

# an explicit mark wins over any computed score, whenever either was made
MARKS_WIN_VIEW = "CREATE OR REPLACE" + LOG_VIEW.removeprefix("\n    CREATE").replace(
    "ORDER BY r.ts DESC", "ORDER BY r.source = 'mark' DESC, r.ts DESC")

HNSW = ("CREATE INDEX IF NOT EXISTS packets_hnsw ON packets USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 16, ef_construction = 64)")


def packets_table(dim: int) -> str:
    return f"""
        CREATE TABLE packets (
            seq bigint PRIMARY KEY,           -- insertion order
            id text NOT NULL UNIQUE,          -- UUIDv7, time-ordered
            ts timestamp NOT NULL,            -- UTC
            session text NOT NULL,
            role text NOT NULL,
            prose text NOT NULL,
            embedding vector({dim}) NOT NULL,
            embed_model text NOT NULL,
            generation text,
            corpus text,
            resonance double precision,
            resonance_source text,
            parent text,
            corrects text,
            meta jsonb,
            tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, prose)) STORED
        );
        CREATE INDEX packets_tsv ON packets USING gin (tsv);
        CREATE INDEX packets_session ON packets (session, seq);
        CREATE INDEX packets_ts ON packets (ts);
    """


MIGRATIONS: list[tuple[str, Callable[[int], str]]] = [
    ("0001_packets", lambda dim: packets_table(dim) + """
        CREATE TABLE store_meta (key text PRIMARY KEY, value text NOT NULL);
    """),
    ("0002_resonance_marks", lambda dim: """
        CREATE TABLE resonance_marks (
            n bigserial,                      -- ties at one timestamp: the later write wins
            packet_id text NOT NULL,
            score double precision NOT NULL,
            source text NOT NULL,             -- mark | novelty | judge | combined | import
            ts timestamp NOT NULL
        );
        CREATE INDEX resonance_marks_packet ON resonance_marks (packet_id, ts DESC);
        CREATE INDEX resonance_marks_source ON resonance_marks (source);
    """),
    ("0003_log_view", lambda dim: LOG_VIEW),
    ("0004_memory_versions", lambda dim: """
        CREATE TABLE memory_versions (
            kind text NOT NULL,               -- notebook | self
            version integer NOT NULL,
            ts timestamp NOT NULL,
            author text NOT NULL,
            reason text,
            text text NOT NULL,
            PRIMARY KEY (kind, version)
        );
    """),
    ("0005_hnsw", lambda dim: HNSW),
    ("0006_reader_role", lambda dim: f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER}') THEN
            BEGIN
              CREATE ROLE {READER} NOLOGIN;
            EXCEPTION WHEN insufficient_privilege THEN
              RAISE NOTICE 'no privilege to create role {READER}';
            END;
          END IF;
          IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER}') THEN
            GRANT SELECT ON packets, resonance_marks, log TO {READER};
          END IF;
        END $$;
    """),
    ("0007_memory_review", lambda dim: "ALTER TABLE memory_versions ADD COLUMN review jsonb;"),
    ("0008_marks_win", lambda dim: MARKS_WIN_VIEW),
]


def pending(con) -> list[str]:
    if not con.execute("SELECT to_regclass('soulctl_migrations')").fetchone()[0]:
        return [name for name, _ in MIGRATIONS]
    done = {r[0] for r in con.execute("SELECT name FROM soulctl_migrations").fetchall()}
    return [name for name, _ in MIGRATIONS if name not in done]


def apply(con, dim: int) -> list[str]:
    """Each pending migration in its own transaction, under an advisory lock so two
    processes never migrate at once."""
    applied = []
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(hashtext('soulctl_migrations'))")
        con.execute("CREATE TABLE IF NOT EXISTS soulctl_migrations (name text PRIMARY KEY, "
                    "applied_at timestamptz NOT NULL DEFAULT now())")
        for name in pending(con):
            sql = dict(MIGRATIONS)[name](dim)
            con.execute(sql)
            con.execute("INSERT INTO soulctl_migrations (name) VALUES (%s)", [name])
            applied.append(name)
    return applied
