"""One in-process DuckDB instance, and the log's database attached to it per operation.

No soulctl process keeps the file open: DuckDB lets one process open a file read-write and
then no other can open it at all, so every operation attaches, works and detaches.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from soulctl.errors import CannotWrite, InvalidInput
from soulctl.log.duckdb.lock import store_lock

log = logging.getLogger(__name__)

_instance: duckdb.DuckDBPyConnection | None = None
_instance_lock = threading.RLock()
_memory_limit: str | None = None  # see limited_memory


@contextmanager
def limited_memory(limit: str = "64MB") -> Iterator[None]:
    """Cap DuckDB's buffer pool while a bulk write runs (an import): by default it keeps the
    blocks it read up to 80% of RAM, so a long import would grow with the log it writes. The
    bulk path's queries are a batch or a chunk of vectors at a time, well inside the cap."""
    global _memory_limit
    with _instance_lock:
        before, _memory_limit = _memory_limit, limit
        if _instance is not None:
            _instance.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        with _instance_lock:
            _memory_limit = before
            if _instance is not None:
                _instance.execute("RESET memory_limit" if before is None else f"SET memory_limit = '{before}'")


@contextmanager
def attached(path: Path, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """The log database attached to this process's one in-memory DuckDB, then detached.

    Creating a DuckDB instance costs ~9 ms here; attaching a file to a live one ~0.3 ms.
    Detaching releases the file, so other processes can open it between our operations. A
    write ends with a checkpoint; one that fails for lack of space leaves what was committed in
    the write-ahead log (readers replay it) and a fresh instance for the next operation, so the
    log is usable again as soon as there is room.
    """
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = duckdb.connect(":memory:")
            if _memory_limit is not None:
                _instance.execute(f"SET memory_limit = '{_memory_limit}'")
        con = _instance
        target = str(path).replace("'", "''")
        try:
            con.execute(f"ATTACH '{target}' AS soul" + (" (READ_ONLY)" if read_only else ""))
        except duckdb.Error as exc:
            _reset_if_broken(con)
            raise failure(exc, path) from None
        try:
            con.execute("USE soul")
            yield con
            if not read_only:
                try:
                    con.execute("CHECKPOINT soul")
                except duckdb.Error as exc:
                    if not _full(exc):
                        raise
                    log.warning("the log's checkpoint needs more space than %s has: what was written "
                                "is committed in its write-ahead log; the next write with room folds it in",
                                path.parent)
        except duckdb.Error as exc:
            mapped = failure(exc, path, opening=False)
            if mapped is exc:
                raise
            raise mapped from None
        finally:
            rollback(con)  # no transaction open: the usual case
            try:
                con.execute("USE memory")
                con.execute("DETACH soul")
            except duckdb.Error:
                _reset_if_broken(con, force=True)


def rollback(con) -> None:
    """Undo the open transaction, if one is open: a failed COMMIT (a full disk) has already
    ended it, and the error to report is the commit's, not this one's."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def release() -> None:
    """Close this process's instance (a store's close): DuckDB objects alive at interpreter
    exit make its bindings print dozens of 'leaked' lines; the next operation opens anew."""
    global _instance
    with _instance_lock:
        con, _instance = _instance, None
        if con is not None:
            try:
                con.close()
            except duckdb.Error:
                pass


def _reset_if_broken(con, force: bool = False) -> None:
    """Drop this process's instance when a failed write left a database attached to it
    (DuckDB invalidates it), so the next operation starts clean."""
    global _instance
    if force or "soul" in {row[0] for row in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}:
        _instance = None
        try:
            con.close()
        except duckdb.Error:
            pass


def _full(exc: BaseException) -> bool:
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def failure(exc: BaseException, path: Path, opening: bool = True) -> Exception:
    """A DuckDB error as the one line a user can act on: a full or read-only disk is exit 8; a
    file that cannot be opened is exit 5; anything else in an operation is left as it is."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if _full(exc):
        return CannotWrite(f"cannot write the log {path}: the disk is full",
                           hint="free some space and retry; what was committed is kept")
    if "Read-only file system" in text:
        return CannotWrite(f"cannot write the log {path}: the file system is read-only",
                           hint="reads work; make the soul home writable to write")
    if "Permission denied" in text:
        return CannotWrite(f"cannot open the log {path}: permission denied",
                           hint="check the permissions of the soul home's data/")
    if "File too large" in text:
        return CannotWrite(f"cannot write the log {path}: a file reached its size limit (ulimit -f)",
                           hint="raise the limit: ulimit -f unlimited")
    if not opening:
        return exc
    return InvalidInput(f"{path}: cannot open the log ({text})",
                        hint="check the file; `soulctl log reindex` rebuilds the indexes")


class LazyRead:
    """The shared lock for a whole search; the database opened only if something needs it."""

    def __init__(self, store):
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

