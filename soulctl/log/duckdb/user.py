"""The user's own use of the log on DuckDB: read-only SQL on a locked connection, exports and
re-embedding (the only way an embedding changes)."""

from __future__ import annotations

import threading

import duckdb
import numpy as np

from soulctl.errors import InvalidInput, NotFound, TimedOut
import soulctl.log.duckdb.schema as schema
from soulctl.log.duckdb.connection import rollback
from soulctl.log.duckdb.lock import store_lock
from soulctl.log.duckdb.rows import SELECT, fixed_array
from soulctl.log.rows import RAW
from soulctl.log.store import SQL_TIMEOUT



class UserQueries:
    """Mixed into DuckDBStore: needs its path, lock_path, _read, _write, _recover, index and
    _sync_indexes."""

    # -- the user's own queries ----------------------------------------------------------
    def sql(self, query: str, timeout: float = SQL_TIMEOUT) -> tuple[list[str], list[tuple]]:
        """The user's own query, on a connection of its own that can read the log's tables and
        nothing else: no files, no network, no extensions, settings locked. It is interrupted
        after `timeout` seconds, so a writer waits for it at most that long."""
        check_read_only(query)
        if self.path.with_name(self.path.name + ".wal").exists():
            self._recover()
        with store_lock(self.lock_path, exclusive=False):
            if not self.path.exists():
                raise NotFound("the log is empty: nothing to query yet")
            con = duckdb.connect(str(self.path), read_only=True, config=USER_SQL_CONFIG)
            timer = threading.Timer(timeout, con.interrupt)
            timer.start()
            try:
                rel = con.execute(query)
                columns = [d[0] for d in rel.description] if rel.description else []
                return columns, rel.fetchall()
            except duckdb.InterruptException:
                raise TimedOut(f"log sql stopped after {timeout:g} s, its time limit",
                               hint="narrow the query, or give it longer with --timeout") from None
            except duckdb.Error as exc:
                raise InvalidInput(f"SQL error: {str(exc).splitlines()[0]}") from None
            finally:
                timer.cancel()
                con.close()

    def export(self, fmt: str, path: str, with_embeddings: bool = False) -> int:
        cols = SELECT + (", embedding" if with_embeddings else "")
        options = {"parquet": "(FORMAT parquet)", "csv": "(FORMAT csv, HEADER true)",
                   "jsonl": "(FORMAT json)"}
        if fmt not in options:
            raise InvalidInput(f"unknown export format {fmt!r}", hint="use jsonl, parquet or csv")
        with self._read() as con:
            if con is None:
                raise NotFound("the log is empty: nothing to export")
            target = path.replace("'", "''")
            con.execute(f"COPY (SELECT {cols} FROM log ORDER BY seq) TO '{target}' {options[fmt]}")
            return int(con.execute("SELECT count(*) FROM packets").fetchone()[0])

    def reembed(self, encode, embed_model: str, dim: int, progress=None) -> int:
        """Recompute every embedding with a new embedder; the only way an embedding changes."""
        with self._read() as con:
            if con is None:
                return 0
            seqs, prose = [], []
            rel = con.execute("SELECT seq, prose FROM packets ORDER BY seq")
            while chunk := rel.fetchmany(10_000):
                seqs += [r[0] for r in chunk]
                prose += [r[1] for r in chunk]
        vectors = encode(prose, progress)  # long: outside the lock
        with self._write() as con:
            late = con.execute("SELECT seq, prose FROM packets WHERE seq > ? ORDER BY seq",
                               [seqs[-1] if seqs else 0]).fetchall()
            if late:
                seqs += [r[0] for r in late]
                vectors = np.vstack([vectors, encode([r[1] for r in late], None)])
            import pyarrow as pa

            table = pa.table({"seq": pa.array(seqs, pa.int64()),
                              "embedding": fixed_array(vectors, dim)})
            con.register("fresh", table)
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("CREATE TABLE packets_reembed AS SELECT p.* REPLACE "
                            f"(f.embedding::FLOAT[{dim}] AS embedding, ? AS embed_model) "
                            "FROM packets p JOIN fresh f USING (seq)", [embed_model])
                con.execute("DROP VIEW log")
                con.execute("DROP TABLE packets")
                con.execute(schema.packets_table(dim))
                con.execute("INSERT INTO packets SELECT * FROM packets_reembed ORDER BY seq")
                con.execute("DROP TABLE packets_reembed")
                con.execute(schema.LOG_VIEW)
                con.execute("UPDATE store_meta SET value = ? WHERE key = 'embed_model'", [embed_model])
                con.execute("UPDATE store_meta SET value = ? WHERE key = 'dim'", [str(dim)])
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
            self.index.reset()
            self._sync_indexes(con, force_vectors=True)
        return len(seqs)


    # -- raw rows, for `store migrate` ----------------------------------------------------
    def raw_packets(self, after_seq: int, limit: int) -> tuple[list[dict], np.ndarray]:
        with self._read() as con:
            if con is None:
                return [], np.zeros((0, 0), np.float32)
            rows = con.execute(f"SELECT {', '.join(RAW)}, embedding FROM packets WHERE seq > ? "
                               "ORDER BY seq LIMIT ?", [int(after_seq), int(limit)]).fetchall()
        out = [dict(zip(RAW, r)) for r in rows]
        vecs = np.array([r[-1] for r in rows], dtype=np.float32) if rows else np.zeros((0, 0), np.float32)
        return out, vecs

    def raw_marks(self) -> list[tuple]:
        with self._read() as con:
            if con is None:
                return []
            return con.execute("SELECT packet_id, score, source, ts FROM resonance_marks "
                               "ORDER BY ts, rowid").fetchall()

    def raw_memory(self) -> list[tuple]:
        with self._read() as con:
            if con is None or "0005_memory_versions" in self._pending(con):
                return []
            return con.execute(f"SELECT kind, version, ts, author, reason, text, {self._review(con)} "
                               "FROM memory_versions ORDER BY kind, version").fetchall()

    def load_raw(self, rows: list[dict], vectors: np.ndarray, marks: list[tuple] | None = None,
                 memory: list[tuple] | None = None) -> None:
        import duckdb as _duckdb

        from soulctl.errors import AlreadyExists
        from soulctl.log.duckdb.rows import insert_rows

        dim = int(vectors.shape[1]) if rows else None
        with self._write(dim) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                if rows:
                    if not con.execute("SELECT 1 FROM store_meta").fetchall():
                        con.execute("INSERT INTO store_meta VALUES ('embed_model', ?), ('dim', ?)",
                                    [rows[0]["embed_model"], str(dim)])
                    insert_rows(con, [{**r, "embedding": v} for r, v in zip(rows, vectors)], dim)
                if marks is not None:
                    con.execute("DELETE FROM resonance_marks")
                    if marks:
                        con.executemany("INSERT INTO resonance_marks VALUES (?, ?, ?, ?)", [list(m) for m in marks])
                if memory is not None:
                    self._restamp_memory()
                    con.execute("DELETE FROM memory_versions")
                    if memory:
                        con.executemany("INSERT INTO memory_versions VALUES (?, ?, ?, ?, ?, ?, ?)",
                                        [_raw_memory_row(m) for m in memory])
                con.execute("COMMIT")
            except _duckdb.ConstraintException:
                rollback(con)
                raise AlreadyExists("the target log already holds some of these packets",
                                    hint="migrate into an empty store, or resume the same migration") from None
            except BaseException:
                rollback(con)
                raise
            if rows:
                self._sync_indexes(con)

    def info(self) -> dict:
        with self._read() as con:
            if con is None or self._pending(con):
                return {"backend": "duckdb", "path": str(self.path), "packets": 0}
            packets, marks = con.execute("SELECT (SELECT count(*) FROM packets), "
                                         "(SELECT count(*) FROM resonance_marks)").fetchone()
            versions = con.execute("SELECT count(*) FROM memory_versions").fetchone()[0]
            meta = dict(con.execute("SELECT key, value FROM store_meta").fetchall())
        index_bytes = sum(p.stat().st_size for p in self.index.root.rglob("*") if p.is_file()) \
            if self.index.root.is_dir() else 0
        return {"backend": "duckdb", "path": str(self.path), "packets": int(packets), "marks": int(marks),
                "memory_versions": int(versions), "embed_model": meta.get("embed_model"),
                "dim": int(meta["dim"]) if "dim" in meta else None,
                "bytes": {"database": self.path.stat().st_size, "indexes": index_bytes},
                "indexes": self.index.state().__dict__}


_READ_STATEMENTS = {"SELECT", "EXPLAIN"}
# The connection that runs a user's SQL reaches the log's own tables only: no file or URL
# readers, no COPY/ATTACH targets, no extension installed or loaded, no setting changed.
USER_SQL_CONFIG = {"enable_external_access": False, "autoinstall_known_extensions": False,
                   "autoload_known_extensions": False, "allow_community_extensions": False,
                   "lock_configuration": True}


def check_read_only(query: str) -> None:
    """One SELECT (or EXPLAIN) statement; anything else is refused before it runs."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise InvalidInput(f"SQL error: {str(exc).splitlines()[0]}") from None
    if not statements:
        raise InvalidInput("empty SQL statement")
    for statement in statements:  # a write anywhere is named first, then the count
        if statement.type.name not in _READ_STATEMENTS:
            words = statement.query.split()
            kind = words[0].upper() if words else statement.type.name
            raise InvalidInput(f"log sql is read-only: {kind} statements are refused",
                               hint="use SELECT; the log changes only through soulctl commands")
    if len(statements) > 1:
        raise InvalidInput(f"log sql runs one statement at a time; got {len(statements)}",
                           hint="run each statement on its own")


def _raw_memory_row(row) -> list:
    """A memory version as another store (or an older soulctl) gave it: the review as JSON
    text, absent before reviews were kept."""
    import json

    row = list(row) + [None] * (7 - len(row))
    if row[6] is not None and not isinstance(row[6], str):
        row[6] = json.dumps(row[6])
    return row
