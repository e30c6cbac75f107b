"""The user's own use of the Postgres log: read-only SQL (a READ ONLY transaction as the
`soulctl_reader` role, which may SELECT the log's tables and nothing else), exports in the
formats every backend writes, re-embedding, the notebook and self versions, and the raw rows
`store migrate` copies."""

from __future__ import annotations

import datetime as _dt
import re

import numpy as np

from soulctl.errors import InvalidInput, NotFound, TimedOut
from soulctl.log.packets import utcnow
import soulctl.log.postgres.schema as schema
from soulctl.log.postgres.connect import READER, vec
from soulctl.log.rows import COLUMNS, RAW, SELECT
from soulctl.log.store import SQL_TIMEOUT

_READ_START = {"SELECT", "WITH", "EXPLAIN", "VALUES", "TABLE"}
# functions that reach past the log's tables or change the session (refused before the server
# is asked; the reader role and the READ ONLY transaction refuse the rest)
_REFUSED = re.compile(r"\b(set_config|pg_read_\w*|pg_ls_\w*|pg_stat_file|lo_\w+|dblink\w*|"
                      r"pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_sleep\w*)\s*\(", re.I)


def check_read_only(query: str) -> str:
    """One SELECT-like statement; anything else is refused before it runs."""
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", query, flags=re.S).strip()
    statements = [s for s in _split(text) if s.strip()]
    if not statements:
        raise InvalidInput("empty SQL statement")
    for statement in statements:
        word = statement.split()[0].upper().strip("(")
        if word not in _READ_START:
            raise InvalidInput(f"log sql is read-only: {word} statements are refused",
                               hint="use SELECT; the log changes only through soulctl commands")
    if len(statements) > 1:
        raise InvalidInput(f"log sql runs one statement at a time; got {len(statements)}",
                           hint="run each statement on its own")
    if m := _REFUSED.search(statements[0]):
        raise InvalidInput(f"log sql reaches the log's tables only: {m.group(1)}() is refused")
    return statements[0]


def _split(text: str) -> list[str]:
    """Statements split on semicolons outside quotes."""
    out, cur, quote = [], [], None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ";":
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


class UserQueries:
    """Mixed into PostgresStore: needs its con(), _fetch, _has_tables and _migrate."""

    def sql(self, query: str, timeout: float = SQL_TIMEOUT) -> tuple[list[str], list[tuple]]:
        import psycopg

        statement = check_read_only(query)
        if not self._has_tables():
            raise NotFound("the log is empty: nothing to query yet")
        con = self.con()
        try:
            with con.transaction():
                con.execute("SET TRANSACTION READ ONLY")
                con.execute(f"SET LOCAL statement_timeout = '{max(1, int(timeout * 1000))}ms'")
                if con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [READER]).fetchone():
                    con.execute(f"SET LOCAL ROLE {READER}")
                cur = con.execute(statement, prepare=True)  # the extended protocol: one statement
                columns = [d.name for d in cur.description] if cur.description else []
                rows = [tuple(vec(v).tolist() if hasattr(v, "to_numpy") else v for v in r) for r in cur.fetchall()]
        except psycopg.errors.QueryCanceled:
            raise TimedOut(f"log sql stopped after {timeout:g} s, its time limit",
                           hint="narrow the query, or give it longer with --timeout") from None
        except psycopg.Error as exc:
            raise InvalidInput(f"SQL error: {str(exc).strip().splitlines()[0]}") from None
        return columns, rows

    def export(self, fmt: str, path: str, with_embeddings: bool = False) -> int:
        """The log oldest first, in the formats `log export` writes on the DuckDB backend: JSON
        lines and CSV byte for byte the same (vectors: the same floats, though a small one may
        read 7.8e-05 where DuckDB writes 0.000078), Parquet with the same column types."""
        if fmt not in ("parquet", "csv", "jsonl"):
            raise InvalidInput(f"unknown export format {fmt!r}", hint="use jsonl, parquet or csv")
        if not self._has_tables():
            raise NotFound("the log is empty: nothing to export")
        rows = self._fetch(f"SELECT {SELECT + (', embedding' if with_embeddings else '')} FROM log ORDER BY seq")
        names = [*COLUMNS, *(["embedding"] if with_embeddings else [])]
        if fmt == "parquet":
            _write_parquet(path, names, rows, int(self.embedder_record()[1]) if with_embeddings else 0)
        else:
            _write_text(path, fmt, names, rows)
        return len(rows)

    def reembed(self, encode, embed_model: str, dim: int, progress=None) -> int:
        if not self._has_tables():
            return 0
        rows = self._fetch("SELECT seq, prose FROM packets ORDER BY seq")
        seqs, prose = [r[0] for r in rows], [r[1] for r in rows]
        vectors = encode(prose, progress)  # long: outside any transaction
        con = self.con()
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(hashtext('soulctl_packets'))")
            late = con.execute("SELECT seq, prose FROM packets WHERE seq > %s ORDER BY seq",
                               [seqs[-1] if seqs else 0]).fetchall()
            if late:
                seqs += [r[0] for r in late]
                vectors = np.vstack([vectors, encode([r[1] for r in late], None)])
            con.execute("DROP VIEW log")
            con.execute("DROP INDEX IF EXISTS packets_hnsw")
            con.execute("ALTER TABLE packets DROP COLUMN embedding")
            con.execute(f"ALTER TABLE packets ADD COLUMN embedding vector({int(dim)})")
            con.execute(f"CREATE TEMP TABLE fresh (seq bigint, embedding vector({int(dim)})) ON COMMIT DROP")
            with con.cursor().copy("COPY fresh (seq, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "vector"])
                for seq, vector in zip(seqs, np.asarray(vectors, np.float32)):
                    copy.write_row([int(seq), vector])
            con.execute("UPDATE packets p SET embedding = f.embedding, embed_model = %s FROM fresh f "
                        "WHERE p.seq = f.seq", [embed_model])
            con.execute("ALTER TABLE packets ALTER COLUMN embedding SET NOT NULL")
            con.execute(schema.LOG_VIEW)
            con.execute(f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER}') "
                        f"THEN GRANT SELECT ON log TO {READER}; END IF; END $$")
            con.execute("UPDATE store_meta SET value = %s WHERE key = 'embed_model'", [embed_model])
            con.execute("UPDATE store_meta SET value = %s WHERE key = 'dim'", [str(dim)])
            con.execute(schema.HNSW)
        return len(seqs)

    # -- the notebook and the self-definition --------------------------------------------
    def memory_versions(self, kind: str) -> list[dict]:
        if not self._has_tables():
            return []
        return [_version(kind, *r) for r in self._fetch(
            "SELECT version, ts, author, reason, text, review FROM memory_versions WHERE kind = %s ORDER BY version",
            [kind])]

    def memory_latest(self, kinds) -> dict[str, dict]:
        if not self._has_tables():
            return {}
        rows = self._fetch("SELECT DISTINCT ON (kind) kind, version, ts, author, reason, text, review FROM memory_versions "
                           "WHERE kind = ANY(%s) ORDER BY kind, version DESC", [list(kinds)])
        return {r[0]: _version(*r) for r in rows}

    def memory_add(self, kind: str, text: str, author: str, reason: str | None,
                   review: dict | None = None) -> int:
        from psycopg.types.json import Jsonb

        self._migrate(None)
        con = self.con()
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(hashtext('soulctl_memory'))")
            version = con.execute("SELECT coalesce(max(version), 0) + 1 FROM memory_versions WHERE kind = %s",
                                  [kind]).fetchone()[0]
            con.execute("INSERT INTO memory_versions VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        [kind, version, utcnow().replace(tzinfo=None), author, reason, text,
                         Jsonb(review) if review else None])
        return int(version)

    # -- raw rows, for `store migrate` ----------------------------------------------------
    def raw_packets(self, after_seq: int, limit: int) -> tuple[list[dict], np.ndarray]:
        if not self._has_tables():
            return [], np.zeros((0, 0), np.float32)
        rows = self._fetch(f"SELECT {', '.join(RAW)}, embedding FROM packets WHERE seq > %s ORDER BY seq LIMIT %s",
                           [int(after_seq), int(limit)])
        out = [dict(zip(RAW, r)) for r in rows]
        for row in out:
            row["meta"] = _json_text(row["meta"])
        vecs = np.stack([vec(r[-1]) for r in rows]) if rows else np.zeros((0, 0), np.float32)
        return out, vecs

    def raw_marks(self) -> list[tuple]:
        if not self._has_tables():
            return []
        return self._fetch("SELECT packet_id, score, source, ts FROM resonance_marks ORDER BY ts, n")

    def raw_memory(self) -> list[tuple]:
        if not self._has_tables():
            return []
        return self._fetch("SELECT kind, version, ts, author, reason, text, review FROM memory_versions "
                           "ORDER BY kind, version")

    def load_raw(self, rows: list[dict], vectors: np.ndarray, marks: list[tuple] | None = None,
                 memory: list[tuple] | None = None) -> None:
        """Rows as another store gave them (ids, seqs and vectors kept), in one transaction;
        marks and memory versions replace this store's own (they are copied last, whole)."""
        self._migrate(int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[1] else None)
        con = self.con()
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(hashtext('soulctl_packets'))")
            if rows:
                con.execute("DROP INDEX IF EXISTS packets_hnsw")  # reindex() builds it once at the end
                if not con.execute("SELECT 1 FROM store_meta").fetchone():
                    con.execute("INSERT INTO store_meta VALUES ('embed_model', %s), ('dim', %s)",
                                [rows[0]["embed_model"], str(vectors.shape[1])])
                self._copy_in(con, [{**r, "embedding": v} for r, v in zip(rows, vectors)])
            if marks is not None:
                con.execute("DELETE FROM resonance_marks")
                with con.cursor() as cur:
                    cur.executemany("INSERT INTO resonance_marks (packet_id, score, source, ts) "
                                    "VALUES (%s, %s, %s, %s)", marks)
            if memory is not None:
                con.execute("DELETE FROM memory_versions")
                with con.cursor() as cur:
                    cur.executemany("INSERT INTO memory_versions VALUES (%s, %s, %s, %s, %s, %s, %s)",
                                    [_raw_memory_row(m) for m in memory])

    def info(self) -> dict:
        if not self._has_tables():
            return {"backend": "postgresql", "packets": 0}
        counts = self._fetch("SELECT (SELECT count(*) FROM packets), (SELECT count(*) FROM resonance_marks), "
                             "(SELECT count(*) FROM memory_versions), pg_total_relation_size('packets'), "
                             "pg_database_size(current_database()), current_setting('server_version'), "
                             "(SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
                             "current_setting('shared_buffers'), current_setting('hnsw.ef_search')")[0]
        record = self.embedder_record()
        return {"backend": "postgresql", "embedded": self.embedded is not None,
                "packets": int(counts[0]), "marks": int(counts[1]), "memory_versions": int(counts[2]),
                "embed_model": record[0] if record else None, "dim": record[1] if record else None,
                "bytes": {"packets": int(counts[3]), "database": int(counts[4])},
                "server": counts[5], "pgvector": counts[6],
                "settings": {"shared_buffers": counts[7], "hnsw.ef_search": int(counts[8])}, **self.index_state()}


def _write_text(path: str, fmt: str, names: list[str], rows: list[tuple]) -> None:
    import csv
    import json

    def cell(name, value):
        if isinstance(value, _dt.datetime):
            text = value.isoformat(sep=" ")
            return text.rstrip("0") if "." in text else text
        if name == "embedding":
            return vec(value).tolist()
        return value

    with open(path, "w", encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for row in rows:
                f.write(json.dumps({n: cell(n, v) for n, v in zip(names, row)}, ensure_ascii=False,
                                   separators=(",", ":")) + "\n")
            return
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow(["[" + ", ".join(str(x) for x in vec(v)) + "]" if n == "embedding"
                             else _json_text(cell(n, v)) for n, v in zip(names, row)])


def _write_parquet(path: str, names: list[str], rows: list[tuple], dim: int) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    data["meta"] = [json.dumps(m, ensure_ascii=False) if m is not None else None for m in data["meta"]]
    types = {"ts": pa.timestamp("us"), "resonance": pa.float64(), "seq": pa.int64()}
    arrays = {n: pa.array(v, types.get(n, pa.string())) for n, v in data.items() if n != "embedding"}
    arrays["meta"] = pa.ExtensionArray.from_storage(pa.json_(pa.string()), arrays["meta"])  # JSON, as DuckDB's
    if dim:
        flat = np.stack([vec(v) for v in data["embedding"]]).ravel() if rows else np.zeros(0, np.float32)
        arrays["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)
    pq.write_table(pa.table(arrays), path)


def _json_text(value):
    import json

    return json.dumps(value, ensure_ascii=False) if value is not None and not isinstance(value, str) else value


def _version(kind, version, ts, author, reason, text, review=None) -> dict:
    return {"kind": kind, "version": int(version), "ts": ts.replace(tzinfo=_dt.timezone.utc).isoformat(),
            "author": author, "reason": reason, "text": text, "review": review}


def _raw_memory_row(row) -> tuple:
    """A memory version as another store gave it: the review as jsonb (JSON text from DuckDB)."""
    import json

    from psycopg.types.json import Jsonb

    row = list(row) + [None] * (7 - len(row))
    review = json.loads(row[6]) if isinstance(row[6], str) else row[6]
    return (*row[:6], Jsonb(review) if review else None)
