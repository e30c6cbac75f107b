"""Which files of a corpus tree are text worth indexing: honours .gitignore (nested ones too),
leaves hidden files and directories out, never follows symlinks, and skips binaries, oversized, unreadable and non-UTF-8 files, each
counted with its reason. Nothing here is fatal."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pathspec

ALWAYS_SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".venv", "node_modules", ".tox"}
DEFAULT_MAX_BYTES = 2_000_000
SNIFF = 8192


@dataclass
class SourceFile:
    rel: str
    path: Path
    size: int
    mtime_ns: int


@dataclass
class Skipped:
    rel: str
    reason: str  # symlink | binary | oversized | unreadable | not-utf8


def walk(root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[list[SourceFile], list[Skipped]]:
    root = Path(root)
    files: list[SourceFile] = []
    skipped: list[Skipped] = []
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []  # (dir relative to root, its .gitignore)

    def ignored(rel: str, is_dir: bool) -> bool:
        # the deepest .gitignore with a matching pattern decides, as in git
        for base, spec in reversed(specs):
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1:] if base else rel
            result = spec.check_file(sub + ("/" if is_dir else ""))
            if result.include is not None:
                return bool(result.include)
        return False

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath).relative_to(root).as_posix()
        base = "" if base == "." else base
        specs[:] = [(b, s) for b, s in specs if not b or base == b or base.startswith(b + "/")]
        gitignore = Path(dirpath) / ".gitignore"
        if gitignore.is_file() and not gitignore.is_symlink():
            try:
                lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
                specs.append((base, pathspec.GitIgnoreSpec.from_lines(lines)))
            except OSError:
                pass
        keep = []
        for name in sorted(dirnames):
            rel = f"{base}/{name}" if base else name
            full = Path(dirpath) / name
            if name in ALWAYS_SKIP_DIRS or name.startswith(".") or ignored(rel, True):
                continue
            if full.is_symlink():
                skipped.append(Skipped(rel, "symlink"))
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = f"{base}/{name}" if base else name
            if name.startswith(".") or ignored(rel, False):  # hidden files, as ripgrep does
                continue
            full = Path(dirpath) / name
            reason, st = _check(full, max_bytes)
            if reason:
                skipped.append(Skipped(rel, reason))
            else:
                files.append(SourceFile(rel, full, st.st_size, st.st_mtime_ns))
    return files, skipped


def _check(path: Path, max_bytes: int):
    try:
        st = path.lstat()
    except OSError:
        return "unreadable", None
    if stat.S_ISLNK(st.st_mode):
        return "symlink", None
    if not stat.S_ISREG(st.st_mode):
        return "not-a-file", None
    if st.st_size > max_bytes:
        return "oversized", None
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF)
    except OSError:
        return "unreadable", None
    if b"\0" in head:
        return "binary", None
    return None, st


def read_text(path: Path) -> str | None:
    """The file as UTF-8 text, or None when it is not UTF-8 (or cannot be read)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
