"""The files of a generation directory: hashes, the manifest, read-only modes, durable writes.
The floor under building and verifying generations (build.py, verify.py, integrity.py)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Iterator

from soulctl.generations.lineage import LINEAGE
from soulctl.progress import progress_task


def sha256_file(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != LINEAGE:
            yield path


def manifest(root: Path, progress=None) -> dict[str, dict]:
    entries = {}
    files = list(tree_files(root))
    with progress_task(progress, "Hashing", len(files)) as task:
        for path in files:
            rel = path.relative_to(root).as_posix()
            entries[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            task.advance(1)
    return entries


def make_read_only(root: Path) -> None:
    """Every file and folder without its write bits (who may read is what the umask gave)."""
    for path in [*sorted(root.rglob("*"), reverse=True), root]:
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            os.chmod(path, stat.S_IMODE(mode) & ~0o222)


def make_writable(root: Path) -> None:
    """The owner may change it again (before a removal or a repair)."""
    if not root.exists() or root.is_symlink():
        return
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink() and (path.is_dir() or path.is_file()):
            os.chmod(path, stat.S_IMODE(path.lstat().st_mode) | stat.S_IWUSR | (stat.S_IXUSR if path.is_dir() else 0))


def fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(root)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
