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

from soulctl.errors import Unavailable

DEFAULT_TIMEOUT = float(os.environ.get("SOULCTL_LOCK_TIMEOUT", "120"))


@contextmanager
def store_lock(path: Path, exclusive: bool, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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
