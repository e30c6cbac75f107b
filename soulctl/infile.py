"""Reading a file the user named that must be held whole (a token, a prompts file, a config, a
recipe): in bounded memory, with a documented limit and a one-line error past it.

Streams (exports, imports, buffers) are read line by line where they are used; this is for
the few inputs that cannot be. `/dev/zero` or a 22 GB file costs at most `limit` + 1 bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from soulctl.errors import CannotWrite, InvalidInput, NotFound
from soulctl.units import human_size

KIB, MIB = 1 << 10, 1 << 20
LIMITS = {"token": 4 * KIB, "config": 1 * MIB, "prompts": 1 * MIB, "questions": 64 * MIB}


def read_bounded(path: str | Path, limit: int, what: str, regular_only: bool = False,
                 missing_hint: str | None = None) -> bytes:
    """The bytes of `path`, refused past `limit`. `regular_only` refuses a FIFO, a device or a
    socket before opening it (a read from a FIFO waits for a writer that may never come)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"no {what} {path}", hint=missing_hint) from None
    except OSError as exc:
        raise _unreadable(path, what, exc) from None
    if stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"the {what} {path} is a directory", hint="name a file")
    if regular_only and not stat.S_ISREG(st.st_mode):
        raise InvalidInput(f"the {what} {path} is not a regular file (a FIFO, device or socket)",
                           hint="name a regular file")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise _unreadable(path, what, exc) from None
    if len(data) > limit:
        raise InvalidInput(f"the {what} {path} is over the limit of {human_size(limit)}",
                           hint=f"a {what} must be at most {human_size(limit)}")
    return data


def read_text(path: str | Path, limit: int, what: str, regular_only: bool = False,
              missing_hint: str | None = None) -> str:
    data = read_bounded(path, limit, what, regular_only, missing_hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the {what} {path} is not UTF-8 text (byte {exc.start})",
                           hint="convert it: iconv -t utf-8") from None


def _unreadable(path: Path, what: str, exc: OSError):
    if exc.errno in (errno.EACCES, errno.EPERM):
        return CannotWrite(f"cannot read the {what} {path}: permission denied", hint="check its permissions")
    return InvalidInput(f"cannot read the {what} {path}: {exc.strerror or exc}")
