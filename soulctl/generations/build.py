"""Building and checking generation directories.

A generation is built in a temporary directory beside its final place, hashed into a sha256
manifest recorded in lineage.json, made read-only and renamed into place in one step, so a
crash leaves either the whole generation or none. `gen verify` re-hashes every file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from soulctl.errors import AlreadyExists
from soulctl.generations import integrity
from soulctl.generations.lineage import LINEAGE, read_lineage
from soulctl.generations.refs import TMP_PREFIX, current
from soulctl.home import Home
from soulctl.progress import progress_task
from soulctl.processes import alive

DROPPED_DIR = ".dropped"  # per generation: the weight files `gen gc` removed
VERIFIED_DIR = ".verified"  # per generation: the stat of each file when it last verified


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


def clean_stale_builds(home: Home) -> None:
    """Remove temporary build directories left by a killed process (their pid is gone)."""
    if not home.generations.is_dir():
        return
    for path in home.generations.glob(f"{TMP_PREFIX}*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and alive(int(pid)):
            continue
        make_writable(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def build_generation(home: Home, gid: str, write: Callable[[Path], None], lineage: dict,
                     progress=None) -> Path:
    """Run `write(tmpdir)`, add lineage.json with the manifest, make it read-only, rename."""
    target = home.generations / gid
    if target.exists():
        raise AlreadyExists(f"generation {gid} already exists", hint="generations are immutable")
    home.generations.mkdir(parents=True, exist_ok=True)
    clean_stale_builds(home)
    tmp = home.generations / f"{TMP_PREFIX}{gid}-{os.getpid()}"
    tmp.mkdir()
    try:
        write(tmp)
        parent = integrity.raw_lineage(home, lineage["parent"]) if lineage.get("parent") else None
        record = integrity.seal(home, {"id": gid, **lineage, "manifest": manifest(tmp, progress)}, parent)
        (tmp / LINEAGE).write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
        make_read_only(tmp)
        _fsync_tree(tmp)
        os.rename(tmp, target)
        _fsync_dir(home.generations)
    except BaseException:
        make_writable(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if parent is None:  # an anchor: what its source derives to is now known on this machine
        integrity.remember_derivation(record)
    return target


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


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
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


@dataclass
class Verification:
    id: str
    ok: bool
    files: int
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    lineage: list[str] = field(default_factory=list)  # the chain's problems (integrity.py)
    dropped: bool = False  # weights dropped by `gen gc`: only lineage is checked
    note: str | None = None  # what could not be checked (an anchor's source not on this machine)

    def problems(self) -> str:
        parts = [f"{what} {', '.join(names)}" for what, names in
                 (("modified", self.modified), ("missing", self.missing), ("extra", self.extra)) if names]
        return "; ".join(self.lineage + parts)


def dropped_files(home: Home, gid: str) -> list[str]:
    """Weight files `gen gc` removed from a generation (empty when it is whole). Only a marker
    sealed by this home counts: a forged one cannot hide a deleted file."""
    marker = home.generations / DROPPED_DIR / gid
    if not marker.is_file():
        return []
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(record, dict) or not isinstance(record.get("files"), list):
        return []
    payload = {"generation": gid, "files": record["files"]}
    return [str(f) for f in record["files"]] if integrity.sealed_ok(home, payload, record.get("seal")) else []


def mark_dropped(home: Home, gid: str, files: list[str]) -> None:
    """Record (sealed) which weight files `gen gc` removed from `gid`."""
    marker = home.generations / DROPPED_DIR / gid
    marker.parent.mkdir(exist_ok=True)
    payload = {"generation": gid, "files": files}
    marker.write_text(json.dumps({**payload, "seal": integrity.seal_text(home, payload)}) + "\n")


def verify_files(home: Home, gid: str, progress=None) -> list[str]:
    """Only the files against the manifest (what `gen seal` checks before it seals)."""
    result = verify(home, gid, progress, chain=False)
    return [f"{gid}: {result.problems()}"] if not result.ok else []


def verify(home: Home, gid: str, progress=None, chain: bool = True) -> Verification:
    """Every file against the manifest, the lineage chain back to generation 0 (sealed, each
    link's digest), and generation 0 against the model it was made from."""
    from soulctl.errors import SoulError

    root = home.generations / gid
    try:
        record = read_lineage(home, gid)
    except SoulError as exc:
        return Verification(gid, False, 0, lineage=[exc.message])
    expected: dict = record.manifest
    gone = set(dropped_files(home, gid))
    expected = {k: v for k, v in expected.items() if k not in gone}
    present = {p.relative_to(root).as_posix() for p in tree_files(root)}
    result = Verification(gid, True, len(expected), dropped=bool(gone))
    result.missing = sorted(set(expected) - present)
    result.extra = sorted(present - set(expected))
    with progress_task(progress, f"Verifying {gid}", len(expected)) as task:
        for rel in sorted(set(expected) & present):
            path = root / rel
            entry = expected[rel]
            if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
                result.modified.append(rel)
            task.advance(1)
    if chain:
        result.lineage = chain_and_anchor(home, gid, result, progress)
    result.ok = not (result.missing or result.extra or result.modified or result.lineage)
    return result


def chain_and_anchor(home: Home, gid: str, result: Verification, progress=None) -> list[str]:
    """The lineage chain from `gid` back to generation 0, and generation 0's re-derivation."""
    problems = integrity.chain_problems(home, gid)
    if problems:
        return problems
    anchor = gid
    while (parent := integrity.raw_lineage(home, anchor).get("parent")) is not None:
        anchor = parent
    found, result.note = integrity.anchor_problems(home, anchor, progress)
    return found


def verify_cached(home: Home, gid: str, progress=None) -> Verification:
    """verify(), with the file hashes skipped when no file changed since the last whole
    verification: any write to a file renews its ctime, which no user can set back, so equal
    stats mean equal bytes. The stats are sealed (a forger cannot write them either); the
    lineage chain is checked every time (it is small). Serving calls this before every start."""
    root = home.generations / gid
    record = home.generations / VERIFIED_DIR / f"{gid}.json"
    stats = {p.relative_to(root).as_posix(): _stat_key(p) for p in [*tree_files(root), root / LINEAGE]
             if p.exists()}
    payload = {"generation": gid, "stats": stats}
    try:
        kept = json.loads(record.read_text())
        if isinstance(kept, dict) and kept.get("stats") == stats and integrity.sealed_ok(home, payload, kept.get("seal")):
            result = Verification(gid, True, len(stats))
            result.lineage = chain_and_anchor(home, gid, result, progress)
            result.ok = not result.lineage
            return result
    except (OSError, ValueError):
        pass
    result = verify(home, gid, progress)
    if result.ok:
        try:
            record.parent.mkdir(exist_ok=True)
            tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({**payload, "seal": integrity.seal_text(home, payload)}))
            os.replace(tmp, record)
        except OSError:  # a read-only home: verified again next time
            pass
    return result


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def summary(home: Home, gid: str) -> dict:
    """One row of `gen ls`."""
    record = read_lineage(home, gid)
    drift = record.drift or {}
    cur = current(home)
    marks = []
    if gid == cur:
        marks.append("current")
    if record.anchor in (None, gid):
        marks.append("anchor")
    if dropped_files(home, gid):
        marks.append("gc")
    if (home.generations / "rejected" / f"{gid}.json").is_file():  # by `evolve` (evolve/cycle.py)
        marks.append("rejected")
    return {
        "id": gid,
        "parent": record.parent,
        "created_at": record.created_at,
        "layers": len(record.layers),
        "adapters": record.adapters,
        "drift": drift.get("overall"),
        "current": gid == cur,
        "marks": marks,
        "bytes": sum(e.get("bytes", 0) for e in record.manifest.values()),
    }

