"""Writing a file the user named (`-o`, `--plot`, a bundle): never half-written, never over
something that was not meant.

Every path is resolved first — `..`, symlinks, `/dev/fd/N`, `/proc/self/fd/N` — and only then
classified, so a spelling cannot slip past a check. What it resolves to decides:

- a regular file, or nothing yet: written to a temporary file beside it, synced and renamed
  into place, so a crash leaves the old file or the new one. An existing file is refused
  unless `force`; the soul home's own state (store, indexes, generations, corpora, soul.yaml)
  is refused even with `force`. The new file honours the user's umask.
- a FIFO or a character device (a terminal, /dev/null): written *into*, never replaced.
- this process's standard output (`-`, or a path naming it): written into, as a shell
  redirection means — unless it is the soul home's own state.
- anything else (a directory, a socket, a block device): refused.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from soulctl.errors import AlreadyExists, CannotWrite, InvalidInput, NotFound

STDOUT = "-"
IMAGE_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "webp", "tif", "tiff", "eps", "ps", "gif")


def image_format(path: str | Path) -> str:
    """The image format a plot's name asks for, from its extension; refused unless a plot can
    be written in it (checked before the work, never at the end of it)."""
    suffix = Path(str(path)).suffix.lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:
        raise InvalidInput(f"{path}: a plot needs an image extension, not {('.' + suffix) if suffix else 'none'}",
                           hint=f"name it .png, .svg or .pdf (also {', '.join(IMAGE_FORMATS[3:])})")
    return suffix


def check_output(path: str | Path, force: bool = False, owner=None) -> tuple[str, Path]:
    """Refuse now what output_path would refuse later (before minutes of work): returns
    (kind, where) — "stdout", "stream" (a FIFO or device to write into), or "file"/"new" with
    the resolved path of a file to (re)place."""
    if str(path) == STDOUT:
        _refuse_home_state(_stdout_target(), path, owner)
        return "stdout", Path(STDOUT)
    text = os.path.expanduser(str(path))
    try:
        st = os.stat(text)  # follows every link, /proc/self/fd/N included
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    real = Path(os.path.realpath(text))
    if st is not None and _is_stdout(st):
        _refuse_home_state(real, path, owner)
        return "stdout", Path(STDOUT)
    if st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        return "stream", Path(text)
    _refuse_home_state(real, path, owner)
    if st is None:
        if not real.parent.is_dir():
            raise NotFound(f"directory {real.parent} does not exist", hint=f"create it: mkdir -p {real.parent}")
        return "new", real
    if stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{path} is a directory", hint="name a file to write")
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput(f"{path} is not a file, a FIFO or a terminal (a socket or block device)",
                           hint="name a file to write")
    if not force:
        shown = str(path) if Path(os.path.normpath(text)) == real else f"{path} (that is {real})"
        raise AlreadyExists(f"{shown} already exists", hint="pass --force to replace it")
    return "file", real


@contextmanager
def output_path(path: str | Path, force: bool = False, owner=None) -> Iterator[Path]:
    """A path to write the output to; on success the output lands at `path`.

    `owner`, when given (a Soul), says which files are its own state: never overwritten."""
    kind, real = check_output(path, force, owner)
    if kind in ("stream", "stdout"):
        with tempfile.TemporaryDirectory(prefix="soulctl-out-") as tmpdir:
            tmp = Path(tmpdir) / (real.name if kind == "stream" else "out")
            yield tmp
            _copy_into(tmp, None if kind == "stdout" else real)
        return
    fd, tmp_name = _mkstemp(real)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _sync(tmp)
        os.chmod(tmp, _mode_for(real, kind))
        os.replace(tmp, real)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _stdout_target() -> Path | None:
    """What this process's standard output is, as a path, when it is a file (Linux)."""
    link = Path("/proc/self/fd/1")
    try:
        if stat.S_ISREG(os.fstat(1).st_mode) and link.exists():
            return Path(os.path.realpath(link))
    except OSError:
        pass
    return None


def _is_stdout(st: os.stat_result) -> bool:
    try:
        return os.path.samestat(st, os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):
        return False


def _refuse_home_state(real: Path | None, path, owner) -> None:
    if owner is not None and real is not None and owner.owns(real):
        raise InvalidInput(f"{path} is part of the soul home's own state; refusing to write over it",
                           hint="write the output somewhere else")


def _mode_for(real: Path, kind: str) -> int:
    """A replaced file keeps its mode; a new one gets what the user's umask allows."""
    if kind == "file":
        try:
            return stat.S_IMODE(os.stat(real).st_mode)
        except OSError:
            pass
    from soulctl.processes import user_umask

    return 0o666 & ~user_umask()


def _mkstemp(real: Path) -> tuple[int, str]:
    try:
        # the suffix kept: writers that infer a format from it (plots) still can
        return tempfile.mkstemp(prefix=f".{real.name}.tmp.", suffix=real.suffix, dir=real.parent)
    except OSError as exc:
        raise _cannot_write(str(real), exc) from None


def _copy_into(source: Path, target: Path | None) -> None:
    """The output into a stream: `target`, or standard output as it is (`>>` appends)."""
    try:
        with open(source, "rb") as src:
            if target is None:
                sys.stdout.flush()
                shutil.copyfileobj(src, sys.stdout.buffer)
                sys.stdout.buffer.flush()
                return
            with open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _cannot_write(str(target or "standard output"), exc) from None


def _sync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _cannot_write(path, exc: OSError) -> CannotWrite:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = {errno.ENOSPC: "free some space", errno.EACCES: "check the permissions",
            errno.EROFS: "write somewhere writable"}.get(exc.errno, "choose another path")
    return CannotWrite(f"cannot write {path}: {reason}", hint=hint)
