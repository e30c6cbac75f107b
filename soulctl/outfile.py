"""Writing a file the user named (`-o`, `--plot`, a bundle): never half-written, never over
something that was not meant.

A regular file is written to a temporary file beside it, synced and renamed into place, so
a crash leaves the old file or the new one. An existing file is refused unless `force`; the
soul home's own state (store, indexes, generations, corpora, soul.yaml) is refused even with
`force`. A FIFO, a device, a socket or `/dev/stdout` is written *into*, never replaced.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from soulctl.errors import AlreadyExists, CannotWrite, InvalidInput, NotFound

_STREAM_PREFIXES = ("/dev/", "/proc/self/fd/")


def check_output(path: str | Path, force: bool = False, home=None) -> tuple[str, Path]:
    """Refuse now what output_path would refuse later (before minutes of work): returns
    (kind, where) — "stream" to write into, else the real path of a file to (re)place."""
    target = Path(path).expanduser()
    kind = _kind(target)
    if kind == "stream":
        return kind, target
    real = Path(os.path.realpath(target))  # a symlink: its target gets the new content
    if home is not None and home.owns(real):
        raise InvalidInput(f"{path} is part of the soul home's own state; refusing to write over it",
                           hint="write the output somewhere else")
    if kind == "dir":
        raise InvalidInput(f"{path} is a directory", hint="name a file to write")
    if kind == "file" and not force:
        raise AlreadyExists(f"{path} already exists", hint="pass --force to replace it")
    if not real.parent.is_dir():
        raise NotFound(f"directory {real.parent} does not exist", hint=f"create it: mkdir -p {real.parent}")
    return kind, real


@contextmanager
def output_path(path: str | Path, force: bool = False, home=None) -> Iterator[Path]:
    """A path to write the output to; on success the output lands at `path`.

    `home`, when given, is the soul home whose own files must never be overwritten."""
    kind, real = check_output(path, force, home)
    if kind == "stream":
        with tempfile.TemporaryDirectory(prefix="soulctl-out-") as tmpdir:
            tmp = Path(tmpdir) / (real.name or "out")
            yield tmp
            _copy_into(tmp, real)
        return
    fd, tmp_name = _mkstemp(real)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _sync(tmp)
        os.replace(tmp, real)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _kind(target: Path) -> str:
    """stream (write into it), file (exists), dir, or new."""
    text = str(target)
    if text.startswith(_STREAM_PREFIXES) and not text.startswith("/dev/shm/"):
        return "stream"
    try:
        st = target.stat()  # follows symlinks
    except FileNotFoundError:
        return "new"
    except OSError as exc:
        raise _cannot_write(text, exc) from None
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "stream"  # FIFO, character or block device, socket


def _mkstemp(real: Path) -> tuple[int, str]:
    try:
        # the suffix kept: writers that infer a format from it (plots) still can
        return tempfile.mkstemp(prefix=f".{real.name}.tmp.", suffix=real.suffix, dir=real.parent)
    except OSError as exc:
        raise _cannot_write(str(real), exc) from None


def _copy_into(source: Path, target: Path) -> None:
    import sys

    try:
        with open(source, "rb") as src:
            if str(target) in ("/dev/stdout", "/proc/self/fd/1"):  # stdout as it is (>> appends)
                shutil.copyfileobj(src, sys.stdout.buffer)
                sys.stdout.buffer.flush()
                return
            with open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _cannot_write(str(target), exc) from None


def _sync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _cannot_write(path, exc: OSError) -> CannotWrite:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = {errno.ENOSPC: "free some space", errno.EACCES: "check the permissions",
            errno.EROFS: "write somewhere writable"}.get(exc.errno, "choose another path")
    return CannotWrite(f"cannot write {path}: {reason}", hint=hint)
