"""Checking generations: every file against its manifest, the lineage chain back to generation
0 (integrity.py), generation 0 against the shipped model — in full (`gen verify`), or cached by
the files' stats for what serves a generation each time it starts (`serve`, `chat --strict`).
And sealing a home made before lineages were sealed, once it checks."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import soulctl.generations.integrity as integrity
from soulctl.generations.build import DROPPED_DIR, VERIFIED_DIR, dropped_files
from soulctl.generations.files import make_read_only, make_writable, sha256_file, tree_files
from soulctl.generations.lineage import LINEAGE, read_lineage
from soulctl.home import Home
from soulctl.progress import progress_task


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


# -- sealing a home made before sealing ---------------------------------------------------------
def seal_home(home: Home, progress=None) -> dict:
    """Seal every generation of a home whose lineages are not (made before sealing, or whose
    key was lost): only after each one's files match its manifest and generation 0 matches
    the shipped model re-derived. Rewrites each lineage.json with its digests and seal (the one
    change a generation ever takes) and re-seals `gen gc`'s markers."""
    from soulctl.errors import CheckFailed
    from soulctl.generations.refs import generation_ids

    ids = generation_ids(home)
    problems = []
    for gid in ids:
        problems += verify_files(home, gid, progress)
    found, note = integrity.anchor_problems(home, ids[0], progress) if ids else ([], None)
    if problems or found:
        raise CheckFailed(f"not sealed: {'; '.join((problems + found)[:5])}",
                          hint="a home is sealed only as it was made: `soulctl gen materialize GEN` rebuilds one")
    integrity.home_key(home, create=True)
    sealed, parents = [], {}
    for gid in ids:
        record = integrity.raw_lineage(home, gid)
        parent = parents.get(record.get("parent")) if record.get("parent") else None
        new = integrity.seal(home, record, parent)
        parents[gid] = new
        if new != record:
            path = home.generations / gid / "lineage.json"
            make_writable(path.parent)
            try:
                tmp = path.with_name(".lineage.json.seal")
                tmp.write_text(json.dumps(new, indent=2) + "\n")
                os.replace(tmp, path)
            finally:
                make_read_only(path.parent)
            sealed.append(gid)
        marker = home.generations / DROPPED_DIR / gid
        if marker.is_file():
            try:
                old = json.loads(marker.read_text())
            except ValueError:
                old = None
            files = old if isinstance(old, list) else (old or {}).get("files", [])
            payload = {"generation": gid, "files": files}
            marker.write_text(json.dumps({**payload, "seal": integrity.seal_text(home, payload)}) + "\n")
    return {"sealed": sealed, "generations": len(ids), "note": note}
