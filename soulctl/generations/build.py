"""Building generation directories.

A generation is built in a temporary directory beside its final place, hashed into a sha256
manifest recorded in its sealed lineage.json (integrity.py), made read-only and renamed into
place in one step, so a crash leaves either the whole generation or none. verify.py checks it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from soulctl.errors import AlreadyExists
import soulctl.generations.integrity as integrity
from soulctl.generations.files import fsync_dir, fsync_tree, make_read_only, make_writable, manifest
from soulctl.generations.lineage import LINEAGE, read_lineage
from soulctl.generations.refs import TMP_PREFIX, current
from soulctl.home import Home
from soulctl.progress import progress_task
from soulctl.processes import alive

DROPPED_DIR = ".dropped"  # per generation: the weight files `gen gc` removed
VERIFIED_DIR = ".verified"  # per generation: the stat of each file when it last verified


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
        fsync_tree(tmp)
        os.rename(tmp, target)
        fsync_dir(home.generations)
    except BaseException:
        make_writable(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if parent is None:  # an anchor: what its source derives to is now known on this machine
        integrity.remember_derivation(record)
    return target


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

