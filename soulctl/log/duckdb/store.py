"""The bifocal log on DuckDB (`data/soul.duckdb`), the embedded default store.

Every call opens the database, works and closes, under the store lock (see lock.py): shared
to read (several readers at once, read-only), exclusive to write. Embedding happens before
the lock is taken, so a writer holds it only for its insert. The class is assembled from
one mixin per job: memory versions (memory.py), search (search.py), the user's own queries
(user.py); connections live in connection.py and row conversions in rows.py.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import numpy as np

from soulctl.errors import AlreadyExists, CannotWrite, InvalidInput, NotFound
from soulctl.interrupts import deferred
import soulctl.log.duckdb.schema as schema
from soulctl.log.duckdb.connection import attached, limited_memory, release, rollback
from soulctl.log.duckdb.index import LogIndex
from soulctl.log.duckdb.lock import store_lock
from soulctl.log.duckdb.memory import MemoryVersions
import soulctl.log.duckdb.rows as rows_module
from soulctl.log.duckdb.rows import insert_rows, vector_chunks, where_clause
from soulctl.log.duckdb.search import Ranking
from soulctl.log.duckdb.user import UserQueries
from soulctl.log.packets import Filters, NewPacket, Packet, check_vectors, utcnow
from soulctl.log.rows import SELECT, new_rows, packet_from_new_row, packet_from_row
from soulctl.log.store import Store, WriteInterrupted, embedder_mismatch
from soulctl.search import vectorfile

log = logging.getLogger(__name__)


def vector_lag_limit(total: int) -> int:
    """How far the vector index may trail the log before a writer extends it."""
    return max(2000, total // 20)


class DuckDBStore(MemoryVersions, Ranking, UserQueries, Store):
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
        if not self._migrated and self._upgrade():
            self._migrated = True
        with store_lock(self.lock_path, exclusive=False):
            if not self.path.exists():
                yield None
                return
            with attached(self.path, read_only=True) as con:
                yield con

    def _upgrade(self) -> bool:
        """A log written by an older soulctl gets this one's migrations before its first read
        (where the home can be written; a read-only one is read as it is). True when the
        schema is current."""
        if not self.path.exists():
            return False
        with store_lock(self.lock_path, exclusive=False):
            with attached(self.path, read_only=True) as con:
                stale = schema.pending(con)
        if not stale or "0001_packets" in stale:
            return not stale
        try:
            with self._write():
                return True
        except CannotWrite:
            return False

    def _recover(self) -> None:
        """A writer was killed: replay its write-ahead log once, so readers see whole packets.
        Where the home cannot be written (read-only, full) a read-only attach replays it in
        memory instead, each time."""
        try:
            with store_lock(self.lock_path, exclusive=True):
                if self.path.with_name(self.path.name + ".wal").exists():
                    with attached(self.path, read_only=False):
                        pass
        except CannotWrite:
            pass

    @contextmanager
    def _write(self, dim: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        with deferred(), store_lock(self.lock_path, exclusive=True):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with attached(self.path, read_only=False) as con:
                if self._pending(con):
                    if dim is None:
                        dim = self._existing_dim(con)
                    if dim is None:
                        raise NotFound("the log is empty: nothing to read yet",
                                       hint="add packets with `soulctl log add`")
                    schema.apply(con, dim)
                yield con

    def _pending(self, con) -> list[str]:
        """Migrations not yet applied; once none are, that holds for this process."""
        if self._migrated:
            return []
        pending = schema.pending(con)
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
        written: list[Packet] = []
        try:
            with self._write(int(embeddings.shape[1])) as con:
                written = self._append(con, packets, embeddings, embed_model)
                if index:
                    self._sync_indexes(con)
                else:
                    self.index.note_log_seq(written[-1].seq)
        except KeyboardInterrupt:
            if written:
                raise WriteInterrupted(written) from None
            raise
        except Exception as exc:
            if not written:
                raise  # nothing was committed: the caller's error, nothing stored
            # committed: failing now would make a retry add them twice. What follows a commit
            # (indexes, checkpoint) is derived; the next write, or `log reindex`, completes it.
            log.warning("%d packet(s) committed; what follows a write could not be finished (%s): "
                        "nothing is lost, and the next write with room (or `soulctl log reindex`) "
                        "brings searches up to date", len(written),
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
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

    def bulk(self):
        """DuckDB's buffer pool capped (connection.limited_memory): it would otherwise keep every
        block an import wrote and read, growing with the log."""
        return limited_memory()

    def settle(self) -> None:
        """Wait for background upkeep (indexing and checkpoint after add_then_index)."""
        if self._upkeep is not None:
            self._upkeep.join()
            self._upkeep = None

    def close(self) -> None:
        self.settle()
        release()

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
        rows = new_rows(packets, embeddings, embed_model, next_seq)
        con.execute("BEGIN TRANSACTION")
        try:
            insert_rows(con, rows, dim)
            con.execute("COMMIT")
        except duckdb.ConstraintException:  # an id another writer added meanwhile
            rollback(con)
            raise AlreadyExists("a packet with one of these ids is already in the log",
                                hint="leave `id` out to add packets as new ones") from None
        except BaseException:
            rollback(con)
            raise
        return [packet_from_new_row(r) for r in rows]


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
                rollback(con)
                raise

    def latest_marks(self, source: str) -> dict[str, float]:
        with self._read() as con:
            if con is None:
                return {}
            rows = con.execute("SELECT packet_id, arg_max(score, ts) FROM resonance_marks "
                               "WHERE source = ? GROUP BY packet_id", [source]).fetchall()
        return {r[0]: float(r[1]) for r in rows}

    def vectors(self, role: str | None = None) -> tuple[list[dict], np.ndarray]:
        where = "WHERE role = ?" if role else ""
        with self._read() as con:
            if con is None:
                return [], np.zeros((0, 0), np.float32)
            table = rows_module.arrow(con, f"SELECT id, seq, session, role, prose, resonance, embedding FROM log "
                                            f"{where} ORDER BY seq", [role] if role else [])
        if not table.num_rows:
            return [], np.zeros((0, 0), np.float32)
        names = ("id", "seq", "session", "role", "prose", "resonance")
        columns = [table.column(name).to_pylist() for name in names]
        meta = [dict(zip(names, row)) for row in zip(*columns)]
        return meta, rows_module.matrix(table.column("embedding"), table.num_rows)

    def unmarked(self, source: str, role: str | None = None) -> tuple[list[dict], np.ndarray]:
        where = "AND role = ?" if role else ""
        with self._read() as con:
            if con is None:
                return [], np.zeros((0, 0), np.float32)
            rows = con.execute(
                "SELECT id, seq, session, role, prose, resonance, embedding, before FROM ("
                "  SELECT *, lag(prose) OVER (PARTITION BY session ORDER BY seq) AS before FROM log) "
                "WHERE id NOT IN (SELECT packet_id FROM resonance_marks WHERE source = ?) "
                f"{where} ORDER BY seq", [source, *([role] if role else [])]).fetchall()
        meta = [{"id": r[0], "seq": r[1], "session": r[2], "role": r[3], "prose": r[4], "resonance": r[5],
                 "before": r[7]} for r in rows]
        vecs = np.array([r[6] for r in rows], dtype=np.float32) if rows else np.zeros((0, 0), np.float32)
        return meta, vecs

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
        if not self.index.keyword_current(state):
            self.index.keyword_reset()
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
            everything, dim = vector_chunks(con, 0, max_seq), self._existing_dim(con)
            self.index.vector_extend(vector_chunks(con, state.vector_seq, max_seq), everything, max_seq, total,
                                     dim, lambda n: vectorfile.sample(everything, n, total, dim))
        elif lag and state.tail_seq < max_seq:  # the few past the index go to its tail
            dim = self._existing_dim(con)
            restart = state.tail_seq < state.vector_seq or not self.index.tail_ok(state, dim)
            for seqs, vecs in vector_chunks(con, state.vector_seq if restart else state.tail_seq, max_seq)():
                self.index.tail_append(seqs, vecs, restart)
                restart = False  # the tail started again: later chunks extend it

    def reindex(self) -> dict:
        """Rebuild the derived indexes from the database."""
        self.index.reset()
        with self._write() as con:
            self._sync_indexes(con, force_vectors=True)
            total = con.execute("SELECT count(*) FROM packets").fetchone()[0]
        return {"packets": int(total), **self.index.state().__dict__}

    # -- reads ---------------------------------------------------------------------------
    def get(self, packet_id: str, with_embedding: bool = False) -> Packet:
        cols = SELECT + (", embedding" if with_embedding else "")
        with self._read() as con:
            if con is None:
                raise NotFound(f"no packet {packet_id}: the log is empty")
            # a whole id; else a prefix, literal (`_` and `%` are not LIKE's wildcards)
            rows = con.execute(f"SELECT {cols} FROM log WHERE id = ?", [packet_id]).fetchall() or \
                con.execute(f"SELECT {cols} FROM log WHERE starts_with(id, ?) LIMIT 2", [packet_id]).fetchall()
        if not rows:
            raise NotFound(f"no packet {packet_id}", hint="see `soulctl log ls`")
        if len(rows) > 1:
            raise InvalidInput(f"packet id prefix {packet_id!r} is ambiguous", hint="give more of the id")
        return packet_from_row(rows[0], with_embedding)

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        with self._read() as con:
            if con is None:
                return set()
            rows = con.execute("SELECT id FROM packets WHERE id IN (SELECT unnest(?))", [list(ids)]).fetchall()
        return {r[0] for r in rows}

    def list(self, filters: Filters, limit: int | None = None, newest_first: bool = True) -> Iterator[Packet]:
        where, params = where_clause(filters)
        order = "DESC" if newest_first else "ASC"
        lim = f"LIMIT {int(limit)}" if limit is not None else ""
        with self._read() as con:
            if con is None:
                return
            rel = con.execute(f"SELECT {SELECT} FROM log WHERE TRUE {where} ORDER BY seq {order} {lim}",
                              params)
            while chunk := rel.fetchmany(1000):
                for row in chunk:
                    yield packet_from_row(row)

    def count(self, filters: Filters | None = None) -> int:
        where, params = where_clause(filters)
        with self._read() as con:
            if con is None or self._pending(con):
                return 0
            return int(con.execute(f"SELECT count(*) FROM log WHERE TRUE {where}", params).fetchone()[0])


# -- helpers ---------------------------------------------------------------------------------
def _check_batch(packets: Sequence[NewPacket], embeddings: np.ndarray) -> bool:
    """Whether there is anything to write; one finite embedding per packet or a refusal."""
    if len(packets) != len(embeddings):
        raise ValueError("one embedding per packet")
    if packets:
        check_vectors(embeddings)
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


