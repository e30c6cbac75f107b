"""The bifocal log on DuckDB (`data/soul.duckdb`), the embedded default store.

Every call opens the database, works and closes, under the store lock (see lock.py): shared
to read (several readers at once, read-only), exclusive to write. Embedding happens before
the lock is taken, so a writer holds it only for its insert.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import numpy as np

from soulctl.errors import AlreadyExists, InvalidInput, NotFound
from soulctl.store import migrations
from soulctl.fusion import rrf
from soulctl.store.base import Filters, Hit, NewPacket, Packet, Store, new_id, utcnow
from soulctl.store.lock import store_lock
from soulctl.store.log_index import LogIndex

log = logging.getLogger(__name__)

COLUMNS = ("id", "seq", "ts", "session", "role", "prose", "embed_model", "generation", "corpus",
           "resonance", "resonance_source", "parent", "corrects", "meta")
_SELECT = ", ".join(COLUMNS)
BATCH = 512  # packets per transaction in bulk writes


def vector_lag_limit(total: int) -> int:
    """How far the vector index may trail the log before a writer extends it."""
    return max(2000, total // 20)


class DuckDBStore(Store):
    def __init__(self, path: Path, index_dir: Path | None = None):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.index = LogIndex(index_dir or self.path.parent / "index" / "log")
        self._migrated = False  # set once the schema is known to be current
        self._upkeep: threading.Thread | None = None  # see add_then_index
        self.stamp_path = self.path.with_name(self.path.name + ".memory")  # see memory_latest
        self._memory_cache: tuple | None = None

    # -- connections ---------------------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        if self.path.with_name(self.path.name + ".wal").exists():
            self._recover()
        with store_lock(self.lock_path, exclusive=False):
            if not self.path.exists():
                yield None
                return
            with attached(self.path, read_only=True) as con:
                yield con

    def _recover(self) -> None:
        """A writer was killed: replay its write-ahead log once, so readers see whole packets."""
        with store_lock(self.lock_path, exclusive=True):
            if self.path.with_name(self.path.name + ".wal").exists():
                with attached(self.path, read_only=False):
                    pass

    @contextmanager
    def _write(self, dim: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        with store_lock(self.lock_path, exclusive=True):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with attached(self.path, read_only=False) as con:
                if self._pending(con):
                    if dim is None:
                        dim = self._existing_dim(con)
                    if dim is None:
                        raise NotFound("the log is empty: nothing to read yet",
                                       hint="add packets with `soulctl log add`")
                    migrations.apply(con, dim)
                yield con

    def _pending(self, con) -> list[str]:
        """Migrations not yet applied; once none are, that holds for this process."""
        if self._migrated:
            return []
        pending = migrations.pending(con)
        self._migrated = not pending
        return pending

    @staticmethod
    def _existing_dim(con) -> int | None:
        try:
            row = con.execute("SELECT value FROM store_meta WHERE key = 'dim'").fetchone()
        except duckdb.Error:
            return None
        return int(row[0]) if row else None

    # -- metadata ------------------------------------------------------------------------
    def embedder_record(self) -> tuple[str, int] | None:
        with self._read() as con:
            if con is None or self._pending(con):
                return None
            rows = dict(con.execute("SELECT key, value FROM store_meta").fetchall())
        if "embed_model" not in rows:
            return None
        return rows["embed_model"], int(rows["dim"])

    def create(self, embed_model: str, dim: int) -> None:
        """Make the database (migrations) for vectors of `dim` from `embed_model`."""
        with self._write(dim) as con:
            con.execute("INSERT OR IGNORE INTO store_meta VALUES ('embed_model', ?), ('dim', ?)",
                        [embed_model, str(dim)])

    # -- writes --------------------------------------------------------------------------
    def add(self, packets: Sequence[NewPacket], embeddings: np.ndarray, embed_model: str,
            index: bool = True) -> list[Packet]:
        """Write whole packets in one transaction; `index=False` defers the indexes (bulk loads
        then call reindex)."""
        if not _check_batch(packets, embeddings):
            return []
        with self._write(int(embeddings.shape[1])) as con:
            written = self._append(con, packets, embeddings, embed_model)
            if index:
                self._sync_indexes(con)
            else:
                self.index.note_log_seq(written[-1].seq)
        return written

    def add_then_index(self, packets: Sequence[NewPacket], embeddings: np.ndarray,
                       embed_model: str) -> list[Packet]:
        """Write whole packets and return as soon as they are committed (durable in the
        write-ahead log). Their index update and the checkpoint go on in a background thread,
        still under the exclusive lock, so no reader sees the log ahead of its indexes;
        `settle()` waits for it. A chat turn uses this: the reader reads the reply meanwhile."""
        if not _check_batch(packets, embeddings):
            return []
        self.settle()
        job = _Upkeep(self, packets, embeddings, embed_model)
        self._upkeep = threading.Thread(target=job.run, name="soulctl-store", daemon=True)
        self._upkeep.start()
        return job.committed()

    def settle(self) -> None:
        """Wait for background upkeep (indexing and checkpoint after add_then_index)."""
        if self._upkeep is not None:
            self._upkeep.join()
            self._upkeep = None

    def _append(self, con, packets: Sequence[NewPacket], embeddings: np.ndarray,
                embed_model: str) -> list[Packet]:
        dim = int(embeddings.shape[1])
        rows = con.execute("SELECT key, value, (SELECT coalesce(max(seq), 0) + 1 FROM packets) "
                           "FROM store_meta").fetchall()
        meta = {key: value for key, value, _ in rows}
        if not meta:
            con.execute("INSERT INTO store_meta VALUES ('embed_model', ?), ('dim', ?)",
                        [embed_model, str(dim)])
            next_seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM packets").fetchone()[0]
        elif meta["embed_model"] != embed_model or int(meta["dim"]) != dim:
            raise embedder_mismatch(meta["embed_model"], embed_model)
        else:
            next_seq = rows[0][2]
        rows = _rows(packets, embeddings, embed_model, next_seq)
        con.execute("BEGIN TRANSACTION")
        try:
            _insert(con, rows, dim)
            con.execute("COMMIT")
        except duckdb.ConstraintException:  # an id another writer added meanwhile
            con.execute("ROLLBACK")
            raise AlreadyExists("a packet with one of these ids is already in the log",
                                hint="leave `id` out to add packets as new ones") from None
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return [_packet_from_row(r) for r in rows]

    def memory_versions(self, kind: str) -> list[dict]:
        with self._read() as con:
            if con is None or "0005_memory_versions" in self._pending(con):
                return []
            rows = con.execute("SELECT version, ts, author, reason, text FROM memory_versions "
                               "WHERE kind = ? ORDER BY version", [kind]).fetchall()
        return [{"kind": kind, "version": r[0], "ts": r[1].replace(tzinfo=_dt.timezone.utc).isoformat(),
                 "author": r[2], "reason": r[3], "text": r[4]} for r in rows]

    def memory_latest(self, kinds: Sequence[str]) -> dict[str, dict]:
        """The newest version of each kind that has one, in one read; cached until the memory
        stamp (rewritten by every memory write, in any process) changes."""
        key = tuple(kinds)
        cached = self._memory_cache
        if cached is not None and cached[0] == (self._memory_stamp(), key):
            return {kind: dict(v) for kind, v in cached[1].items()}
        with self._read() as con:
            if con is None or "0005_memory_versions" in self._pending(con):
                return {}
            stamp = self._memory_stamp(create=True)
            rows = con.execute(
                "SELECT kind, version, ts, author, reason, text FROM memory_versions "
                "WHERE kind IN (SELECT unnest(?)) QUALIFY row_number() OVER "
                "(PARTITION BY kind ORDER BY version DESC) = 1", [list(kinds)]).fetchall()
        latest = {r[0]: {"kind": r[0], "version": r[1], "ts": r[2].replace(tzinfo=_dt.timezone.utc).isoformat(),
                         "author": r[3], "reason": r[4], "text": r[5]} for r in rows}
        self._memory_cache = ((stamp, key), latest) if stamp is not None else None
        return {kind: dict(v) for kind, v in latest.items()}

    def memory_add(self, kind: str, text: str, author: str, reason: str | None) -> int:
        with self._write() as con:
            # renewed first, under the exclusive lock: a failed insert then costs other
            # processes one extra read, where a stamp left old would leave them stale
            self._restamp_memory()
            version = con.execute("SELECT coalesce(max(version), 0) + 1 FROM memory_versions "
                                  "WHERE kind = ?", [kind]).fetchone()[0]
            con.execute("INSERT INTO memory_versions VALUES (?, ?, ?, ?, ?, ?)",
                        [kind, version, utcnow().replace(tzinfo=None), author, reason, text])
        return int(version)

    def _memory_stamp(self, create: bool = False) -> str | None:
        """The database's inode and the token beside it that every memory write renews; None
        when there is none (then nothing is cached). `create` (under the lock) starts one."""
        try:
            return f"{self.path.stat().st_ino}:{self.stamp_path.read_text()}"
        except FileNotFoundError:
            if not create or not self.path.exists():
                return None
        except OSError:
            return None
        try:
            fd = os.open(self.stamp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another reader made it meanwhile
            pass
        except OSError:  # a read-only home: nothing is cached
            return None
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(uuid.uuid4().hex)
        return self._memory_stamp()

    def _restamp_memory(self) -> None:
        tmp = self.stamp_path.with_name(f"{self.stamp_path.name}.{os.getpid()}.tmp")
        tmp.write_text(uuid.uuid4().hex)
        os.replace(tmp, self.stamp_path)
        self._memory_cache = None

    def mark_many(self, marks: list[tuple[str, float, str]]) -> None:
        """Record many (packet id, score, source) resonance signals in one transaction."""
        if not marks:
            return
        now = utcnow().replace(tzinfo=None)
        with self._write() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.executemany("INSERT INTO resonance_marks VALUES (?, ?, ?, ?)",
                                [(pid, float(score), source, now) for pid, score, source in marks])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def mark(self, packet_id: str, score: float, source: str) -> None:
        if not 0.0 <= score <= 1.0:
            raise InvalidInput(f"resonance {score} is outside [0, 1]")
        with self._write() as con:
            if not con.execute("SELECT 1 FROM packets WHERE id = ?", [packet_id]).fetchone():
                raise NotFound(f"no packet {packet_id}", hint="see `soulctl log ls`")
            con.execute("INSERT INTO resonance_marks VALUES (?, ?, ?, ?)",
                        [packet_id, float(score), source, utcnow().replace(tzinfo=None)])

    # -- derived indexes -----------------------------------------------------------------
    def _sync_indexes(self, con, force_vectors: bool = False) -> None:
        """Bring the keyword and (when it trails far enough) the vector index up to the log."""
        top = con.execute("SELECT coalesce(max(seq), 0), count(*) FROM packets").fetchone()
        max_seq, total = int(top[0]), int(top[1])
        self.index.note_log_seq(max_seq)
        state = self.index.state()
        if state.keyword_seq < max_seq:
            rel = con.execute(
                "SELECT seq, prose, role, session, generation, corpus, epoch_ms(ts) AS ts_ms "
                "FROM packets WHERE seq > ? ORDER BY seq", [state.keyword_seq])
            while True:
                chunk = rel.fetchmany(50_000)
                if not chunk:
                    break
                self.index.keyword_add(
                    (dict(zip(("seq", "prose", "role", "session", "generation", "corpus", "ts_ms"), r))
                     for r in chunk), last_seq=int(chunk[-1][0]))
        state = self.index.state()
        lag = max_seq - state.vector_seq
        if lag and (force_vectors or lag >= vector_lag_limit(total)):
            def sample(n):
                if n is None:
                    q = "SELECT seq, embedding FROM packets ORDER BY seq"
                else:
                    q = f"SELECT seq, embedding FROM packets USING SAMPLE {int(n)} ROWS (reservoir, 7)"
                return _vectors(con.execute(q).fetchnumpy())

            seqs, vecs = _vectors(con.execute(
                "SELECT seq, embedding FROM packets WHERE seq > ? ORDER BY seq",
                [state.vector_seq]).fetchnumpy())
            self.index.vector_extend(seqs, vecs, total, sample)
        elif lag and state.tail_seq < max_seq:  # the few past the index go to its tail
            dim = self._existing_dim(con)
            restart = state.tail_seq < state.vector_seq or not self.index.tail_ok(state, dim)
            seqs, vecs = _vectors(con.execute(
                "SELECT seq, embedding FROM packets WHERE seq > ? ORDER BY seq",
                [state.vector_seq if restart else state.tail_seq]).fetchnumpy())
            if len(seqs):
                self.index.tail_append(seqs, vecs, restart)

    def reindex(self) -> dict:
        """Rebuild the derived indexes from the database."""
        self.index.reset()
        with self._write() as con:
            self._sync_indexes(con, force_vectors=True)
            total = con.execute("SELECT count(*) FROM packets").fetchone()[0]
        return {"packets": int(total), **self.index.state().__dict__}

    # -- reads ---------------------------------------------------------------------------
    def get(self, packet_id: str, with_embedding: bool = False) -> Packet:
        cols = _SELECT + (", embedding" if with_embedding else "")
        with self._read() as con:
            if con is None:
                raise NotFound(f"no packet {packet_id}: the log is empty")
            rows = con.execute(f"SELECT {cols} FROM log WHERE id = ? OR id LIKE ? LIMIT 2",
                               [packet_id, packet_id + "%"]).fetchall()
        if not rows:
            raise NotFound(f"no packet {packet_id}", hint="see `soulctl log ls`")
        if len(rows) > 1:
            raise InvalidInput(f"packet id prefix {packet_id!r} is ambiguous", hint="give more of the id")
        return _packet(rows[0], with_embedding)

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        with self._read() as con:
            if con is None:
                return set()
            rows = con.execute("SELECT id FROM packets WHERE id IN (SELECT unnest(?))", [list(ids)]).fetchall()
        return {r[0] for r in rows}

    def list(self, filters: Filters, limit: int | None = None, newest_first: bool = True) -> Iterator[Packet]:
        where, params = _where(filters)
        order = "DESC" if newest_first else "ASC"
        lim = f"LIMIT {int(limit)}" if limit is not None else ""
        with self._read() as con:
            if con is None:
                return
            rel = con.execute(f"SELECT {_SELECT} FROM log WHERE TRUE {where} ORDER BY seq {order} {lim}",
                              params)
            while chunk := rel.fetchmany(1000):
                for row in chunk:
                    yield _packet(row)

    def count(self, filters: Filters | None = None) -> int:
        where, params = _where(filters)
        with self._read() as con:
            if con is None or self._pending(con):
                return 0
            return int(con.execute(f"SELECT count(*) FROM log WHERE TRUE {where}", params).fetchone()[0])

    def search(self, vector: np.ndarray | None, text: str | None, k: int, filters: Filters,
               depth: int | None = None) -> list[tuple[Packet, Hit]]:
        """One pass: FAISS (memory-mapped) and tantivy under the shared lock, then a single
        database read for the hits themselves. Filters on vectors run exactly in DuckDB."""
        depth = depth or k
        if not self.path.exists():
            return []
        state = self.index.state()
        if text is not None and state.keyword_seq < state.log_seq:  # left behind by a crash
            with self._write() as con:
                self._sync_indexes(con)
        with _LazyRead(self) as db:
            state = self.index.state()  # consistent with the log under the shared lock
            rankings: dict[str, list[tuple[int, float]]] = {}
            if vector is not None:
                rankings["semantic"] = self._vector_ranking(db, np.asarray(vector, np.float32).ravel(),
                                                            depth, filters, state)
            if text is not None:
                rankings["keyword"] = self._keyword_ranking(db, text, depth, filters)
            if len(rankings) > 1:
                fused = rrf(rankings, k)
            else:
                name, ranking = next(iter(rankings.items()))
                fused = [(key, score, {name: i}, {name: score})
                         for i, (key, score) in enumerate(ranking[:k], 1)]
            if not fused:
                return []
            packets = _fetch_by_seq(db.get(), [key for key, *_ in fused])
        return [(packets[key], Hit(packets[key].id, score, ranks, scores))
                for key, score, ranks, scores in fused if key in packets]

    def _vector_ranking(self, db, vector, depth, filters, state) -> list[tuple[int, float]]:
        dim = int(vector.shape[0])
        if filters.active():  # exact within the filter
            where, params = _where(filters)
            rows = db.get().execute(
                f"SELECT seq, array_inner_product(embedding, ?::FLOAT[{dim}]) AS s FROM log "
                f"WHERE TRUE {where} ORDER BY s DESC LIMIT {int(depth)}", [vector.tolist(), *params]
            ).fetchall()
            return [(int(r[0]), float(r[1])) for r in rows]
        seqs, scores = self.index.vector_search(vector, depth)
        pairs = list(zip(seqs.tolist(), scores.tolist()))
        reach = 0  # packets up to this seq are covered by the FAISS index and its tail
        if self.index.has_vectors() or state.vector_seq == 0:
            reach = state.vector_seq
            if state.tail_seq >= state.vector_seq:
                tail = self.index.tail_search(vector, depth, state)
                if tail is not None:
                    pairs += zip(tail[0].tolist(), tail[1].tolist())
                    reach = max(reach, state.tail_seq)
        if reach < state.log_seq:  # packets no index reaches yet (a crash, a bulk load): exact
            rows = db.get().execute(
                f"SELECT seq, array_inner_product(embedding, ?::FLOAT[{dim}]) AS s FROM packets "
                f"WHERE seq > ? ORDER BY s DESC LIMIT {int(depth)}", [vector.tolist(), reach]).fetchall()
            pairs += [(int(s), float(v)) for s, v in rows]
        pairs.sort(key=lambda p: -p[1])
        return pairs[:depth]

    def _keyword_ranking(self, db, text, depth, filters) -> list[tuple[int, float]]:
        want = depth
        while True:
            seqs, scores = self.index.keyword_search(text, want, filters)
            pairs = list(zip(seqs, scores))
            if filters.min_resonance is not None and pairs:  # marks live only in the database
                keep = {r[0] for r in db.get().execute(
                    "SELECT seq FROM log WHERE seq IN (SELECT unnest(?::BIGINT[])) AND resonance >= ?",
                    [[int(s) for s in seqs], float(filters.min_resonance)]).fetchall()}
                pairs = [p for p in pairs if p[0] in keep]
            if len(pairs) >= depth or len(seqs) < want:
                return pairs[:depth]
            want *= 8

    # -- the user's own queries ----------------------------------------------------------
    def sql(self, query: str) -> tuple[list[str], list[tuple]]:
        """The user's own query, on a connection of its own that can read the log's tables and
        nothing else: no files, no network, no extensions, settings locked."""
        check_read_only(query)
        if self.path.with_name(self.path.name + ".wal").exists():
            self._recover()
        with store_lock(self.lock_path, exclusive=False):
            if not self.path.exists():
                raise NotFound("the log is empty: nothing to query yet")
            con = duckdb.connect(str(self.path), read_only=True, config=USER_SQL_CONFIG)
            try:
                rel = con.execute(query)
                columns = [d[0] for d in rel.description] if rel.description else []
                return columns, rel.fetchall()
            except duckdb.Error as exc:
                raise InvalidInput(f"SQL error: {str(exc).splitlines()[0]}") from None
            finally:
                con.close()

    def export(self, fmt: str, path: str, with_embeddings: bool = False) -> int:
        cols = _SELECT + (", embedding" if with_embeddings else "")
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
                              "embedding": _fixed(vectors, dim)})
            con.register("fresh", table)
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("CREATE TABLE packets_reembed AS SELECT p.* REPLACE "
                            f"(f.embedding::FLOAT[{dim}] AS embedding, ? AS embed_model) "
                            "FROM packets p JOIN fresh f USING (seq)", [embed_model])
                con.execute("DROP VIEW log")
                con.execute("DROP TABLE packets")
                con.execute(migrations.MIGRATIONS[0][1](dim).split("CREATE TABLE store_meta")[0])
                con.execute("INSERT INTO packets SELECT * FROM packets_reembed ORDER BY seq")
                con.execute("DROP TABLE packets_reembed")
                con.execute(dict(migrations.MIGRATIONS)["0004_resonance_sources"](dim))
                con.execute("UPDATE store_meta SET value = ? WHERE key = 'embed_model'", [embed_model])
                con.execute("UPDATE store_meta SET value = ? WHERE key = 'dim'", [str(dim)])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self.index.reset()
            self._sync_indexes(con, force_vectors=True)
        return len(seqs)


# -- helpers ---------------------------------------------------------------------------------
def _check_batch(packets: Sequence[NewPacket], embeddings: np.ndarray) -> bool:
    """Whether there is anything to write; one embedding per packet or a ValueError."""
    if len(packets) != len(embeddings):
        raise ValueError("one embedding per packet")
    return bool(packets)


class _Upkeep:
    """One add_then_index: the write, then (after the caller is released) the indexes and the
    checkpoint, all under one exclusive lock and one attachment."""

    def __init__(self, store: DuckDBStore, packets, embeddings, embed_model):
        self.store, self.args = store, (packets, embeddings, embed_model)
        self._done = threading.Event()
        self._written: list[Packet] | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.store._write(int(self.args[1].shape[1])) as con:
                self._written = self.store._append(con, *self.args)
                self._done.set()  # readers wait for the lock, so state.json can follow
                try:
                    self.store.index.note_log_seq(self._written[-1].seq)
                    self.store._sync_indexes(con)
                except Exception as exc:  # the packets are safe; the next search catches up
                    log.warning("indexing the log in the background failed: %s", exc)
        except BaseException as exc:
            if self._written is None:
                self._error = exc
            else:
                log.warning("finishing a log write in the background failed: %s", exc)
        finally:
            self._done.set()

    def committed(self) -> list[Packet]:
        self._done.wait()
        if self._written is None:
            self.store.settle()
            raise self._error or RuntimeError("the log write did not finish")
        return self._written


def embedder_mismatch(stored: str, configured: str) -> InvalidInput:
    return InvalidInput(f"the log's vectors were made by {stored}, but the configured embedder "
                        f"is {configured}", hint="run `soulctl log reembed` to re-embed the log")


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
    if len(statements) > 1:
        raise InvalidInput(f"log sql runs one statement at a time; got {len(statements)}",
                           hint="run each statement on its own")
    if statements[0].type.name not in _READ_STATEMENTS:
        words = statements[0].query.split()
        kind = words[0].upper() if words else statements[0].type.name
        raise InvalidInput(f"log sql is read-only: {kind} statements are refused",
                           hint="use SELECT; the log changes only through soulctl commands")


def _where(filters: Filters | None) -> tuple[str, list]:
    if filters is None:
        return "", []
    parts, params = [], []
    for name in ("role", "session", "generation", "corpus"):
        value = getattr(filters, name)
        if value is not None:
            parts.append(f"AND {name} = ?")
            params.append(value)
    if filters.since is not None:
        parts.append("AND ts >= ?")
        params.append(_naive_utc(filters.since))
    if filters.until is not None:
        parts.append("AND ts <= ?")
        params.append(_naive_utc(filters.until))
    if filters.min_resonance is not None:
        parts.append("AND resonance >= ?")
        params.append(float(filters.min_resonance))
    return " ".join(parts), params


def _naive_utc(value: _dt.datetime) -> _dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value


_instance: duckdb.DuckDBPyConnection | None = None
_instance_lock = threading.RLock()


@contextmanager
def attached(path: Path, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """The log database attached to this process's one in-memory DuckDB, then detached.

    Creating a DuckDB instance costs ~9 ms here; attaching a file to a live one ~0.3 ms.
    Detaching releases the file, so other processes can open it between our operations.
    """
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = duckdb.connect(":memory:")
        con = _instance
        target = str(path).replace("'", "''")
        try:
            con.execute(f"ATTACH '{target}' AS soul" + (" (READ_ONLY)" if read_only else ""))
        except duckdb.Error as exc:
            raise InvalidInput(f"{path}: cannot open the log ({str(exc).splitlines()[0]})",
                               hint="check the file; `soulctl log reindex` rebuilds the indexes") from None
        try:
            con.execute("USE soul")
            yield con
            if not read_only:
                con.execute("CHECKPOINT soul")
        finally:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass  # no transaction open: the usual case
            con.execute("USE memory")
            con.execute("DETACH soul")


class _LazyRead:
    """The shared lock for a whole search; the database opened only if something needs it."""

    def __init__(self, store: DuckDBStore):
        self.store = store
        self.con = None
        self._lock = None

    def __enter__(self):
        path = self.store.path
        if path.with_name(path.name + ".wal").exists():
            self.store._recover()
        self._lock = store_lock(self.store.lock_path, exclusive=False)
        self._lock.__enter__()
        return self

    def get(self):
        if self.con is None:
            self._attached = attached(self.store.path, read_only=True)
            self.con = self._attached.__enter__()
        return self.con

    def __exit__(self, *exc):
        try:
            if self.con is not None:
                self._attached.__exit__(*exc)
        finally:
            self._lock.__exit__(*exc)


def _fetch_by_seq(con, seqs: list[int]) -> dict[int, Packet]:
    """Whole packets by seq, with their current resonance (the newest mark, else their own).

    The seqs are integers written into the query: a literal IN list lets DuckDB skip row
    groups by their min/max, where a parameter list would scan the column."""
    if not seqs:
        return {}
    listed = ", ".join(str(int(s)) for s in seqs)
    rows = con.execute(f"SELECT {_SELECT} FROM packets WHERE seq IN ({listed})").fetchall()
    if not rows:
        return {}
    marks = dict(con.execute(
        "SELECT packet_id, (arg_max(score, ts), arg_max(source, ts)) FROM resonance_marks "
        "WHERE source IN ('mark', 'combined', 'import') AND packet_id IN (SELECT unnest(?)) "
        "GROUP BY packet_id", [[r[0] for r in rows]]).fetchall())
    at = COLUMNS.index("resonance")
    packets = {}
    for row in rows:
        if (mark := marks.get(row[0])) is not None:
            row = row[:at] + tuple(mark) + row[at + 2:]  # (score, source)
        packet = _packet(row)
        packets[packet.seq] = packet
    return packets


def _vectors(arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    seqs = np.asarray(arrays["seq"], dtype=np.int64)
    emb = arrays["embedding"]
    if len(emb) == 0:
        return seqs, np.zeros((0, 0), dtype=np.float32)
    return seqs, np.stack(emb).astype(np.float32)


def _fixed(vectors: np.ndarray, dim: int):
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, dim)


def _rows(packets: Sequence[NewPacket], embeddings: np.ndarray, embed_model: str, first_seq: int) -> list[dict]:
    now = utcnow()
    rows = []
    for i, (p, vec) in enumerate(zip(packets, embeddings)):
        ts = p.ts or now
        rows.append({
            "id": p.id or new_id(), "seq": first_seq + i, "ts": _naive_utc(ts), "session": p.session,
            "role": p.role, "prose": p.prose, "embedding": vec, "embed_model": embed_model,
            "generation": p.generation, "corpus": p.corpus, "resonance": p.resonance,
            "resonance_source": p.resonance_source, "parent": p.parent, "corrects": p.corrects,
            "meta": json.dumps(p.meta, ensure_ascii=False) if p.meta is not None else None,
        })
    return rows


_INSERT_COLUMNS = ("seq", "id", "ts", "session", "role", "prose", "embedding", "embed_model",
                   "generation", "corpus", "resonance", "resonance_source", "parent", "corrects", "meta")
SMALL_INSERT = 16  # rows bound as parameters; more go through one Arrow table


def _insert(con, rows: list[dict], dim: int) -> None:
    insert = f"INSERT INTO packets ({', '.join(_INSERT_COLUMNS)}) "
    if len(rows) <= SMALL_INSERT:  # a chat turn: building an Arrow table would cost more
        one = "(" + ", ".join(f"?::FLOAT[{dim}]" if c == "embedding" else "?::JSON" if c == "meta" else "?"
                              for c in _INSERT_COLUMNS) + ")"
        params = [r[c].tolist() if c == "embedding" else r[c] for r in rows for c in _INSERT_COLUMNS]
        con.execute(insert + "VALUES " + ", ".join([one] * len(rows)), params)
        return
    import pyarrow as pa

    cols = [c for c in rows[0] if c != "embedding"]
    data = {c: [r[c] for r in rows] for c in cols}
    table = pa.table({**{c: pa.array(v) if c != "ts" else pa.array(v, pa.timestamp("us"))
                         for c, v in data.items()},
                      "embedding": _fixed(np.stack([r["embedding"] for r in rows]), dim)})
    con.register("incoming", table)
    try:
        con.execute(insert + "SELECT " + ", ".join(
            f"embedding::FLOAT[{dim}]" if c == "embedding" else "meta::JSON" if c == "meta" else c
            for c in _INSERT_COLUMNS) + " FROM incoming")
    finally:
        con.unregister("incoming")


def _packet_from_row(row: dict) -> Packet:
    meta = json.loads(row["meta"]) if row["meta"] else None
    return Packet(id=row["id"], seq=row["seq"], ts=row["ts"].replace(tzinfo=_dt.timezone.utc),
                  session=row["session"], role=row["role"], prose=row["prose"],
                  embed_model=row["embed_model"], generation=row["generation"],
                  corpus=row["corpus"], resonance=row["resonance"],
                  resonance_source=row["resonance_source"], parent=row["parent"],
                  corrects=row["corrects"], meta=meta)


def _packet(row: tuple, with_embedding: bool = False) -> Packet:
    data = dict(zip(COLUMNS, row))
    meta = data["meta"]
    data["meta"] = json.loads(meta) if isinstance(meta, str) else meta
    data["ts"] = data["ts"].replace(tzinfo=_dt.timezone.utc)
    packet = Packet(**data)
    if with_embedding:
        packet.embedding = list(row[len(COLUMNS)])
    return packet
