"""Cross-process locking of the soul's store (DESIGN §11, issue: concurrency).

DuckDB lets one process open a database file read-write, and while it does no other process
can open it at all. So no soulctl process keeps the database open: every operation takes
this lock (shared to read, exclusive to write), opens DuckDB, works, and closes. A chat or a
server that runs for hours therefore never locks out `soulctl log …` in another shell; it
holds the lock only for the milliseconds of each write.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from soulctl.errors import CannotWrite, Unavailable

DEFAULT_TIMEOUT = float(os.environ.get("SOULCTL_LOCK_TIMEOUT", "120"))


@contextmanager
def store_lock(path: Path, exclusive: bool, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    fd = _open(path, exclusive)
    if fd is None:  # a read-only home: nothing can write the store, so a reader needs no lock
        yield
        return
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + timeout
    delay = 0.002
    try:
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise Unavailable(f"the soul's store is busy (waited {timeout:.0f}s for {path.name})",
                                      hint="another soulctl process holds it; retry, or raise "
                                           "SOULCTL_LOCK_TIMEOUT") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


def _open(path: Path, exclusive: bool) -> int | None:
    """The lock file, made if need be. A writer that cannot make or open it is refused (exit 8);
    a reader falls back to the file as it is, or to no lock at all where none can be made."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        if exc.errno not in _READ_ONLY:
            raise
        if exclusive:
            raise CannotWrite(f"cannot write the soul's store: {path} ({os.strerror(exc.errno)})",
                              hint="the soul home is read-only or full: reads work; free space or "
                                   "make the home writable to write") from None
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None
