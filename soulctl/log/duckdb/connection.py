"""One in-process DuckDB instance, and the log's database attached to it per operation.

No soulctl process keeps the file open: DuckDB lets one process open a file read-write and
then no other can open it at all, so every operation attaches, works and detaches.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from soulctl.errors import InvalidInput
from soulctl.log.duckdb.lock import store_lock

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

