"""Generations as history: diff, use, gc (drop old weights, keep lineage) and materialize
(rebuild weights from lineage, bit for bit)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from soulctl.errors import CheckFailed, InvalidInput, NotFound
from soulctl.generations.build import DROPPED_DIR, dropped_files, mark_dropped
from soulctl.generations.files import make_read_only, make_writable, sha256_file
from soulctl.generations.lineage import read_lineage
from soulctl.generations.refs import current, generation_ids, resolve
from soulctl.home import Home


def weight_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.suffix == ".safetensors" or p.name == "model.safetensors.index.json")


def diff(home: Home, a: str, b: str) -> dict:
    """Lineage difference and per-module relative weight deltas ‖B − A‖ / ‖A‖."""
    from soulctl.generations.weights import drift_from_sums, module_type

    ga, gb = resolve(home, a), resolve(home, b)
    la, lb = read_lineage(home, ga), read_lineage(home, gb)
    layers_a, layers_b = la.adapters, lb.adapters
    sums: dict[str, list[float]] = {}
    da, db = home.generations / ga, home.generations / gb
    for gid, d in ((ga, da), (gb, db)):
        if not weight_files(d):
            raise NotFound(f"{gid} has no weights (dropped by gc)", hint=f"soulctl gen materialize {gid}")
    from safetensors import safe_open

    names_b = {}
    for f in sorted(db.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            names_b.update({k: f for k in st.keys()})
    for f in sorted(da.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as sa:
            for name in sa.keys():
                ta = sa.get_tensor(name).float()
                acc = sums.setdefault(module_type(name), [0.0, 0.0])
                acc[1] += float((ta * ta).sum())
                if name in names_b:
                    with safe_open(str(names_b[name]), framework="pt") as sb:
                        tb = sb.get_tensor(name).float()
                    if tb.shape == ta.shape:
                        acc[0] += float(((tb - ta) ** 2).sum())
    changed = {k: v for k, v in (("recipe", (la.recipe, lb.recipe)),
                                 ("anchor", (la.anchor, lb.anchor))) if v[0] != v[1]}
    return {"a": ga, "b": gb,
            "layers_added": [x for x in layers_b if x not in layers_a],
            "layers_removed": [x for x in layers_a if x not in layers_b],
            "changed": {k: {"a": v[0], "b": v[1]} for k, v in changed.items()},
            "weights": drift_from_sums(sums)}


def gc(home: Home, keep: int) -> list[str]:
    """Drop the weights of all but the newest `keep` generations (never the anchor or current)."""
    if keep < 0:
        raise InvalidInput("--keep must be 0 or more")
    ids = generation_ids(home)
    protected = {ids[0], current(home)} | set(ids[-keep:] if keep else [])
    dropped = []
    for gid in ids:
        if gid not in protected and not dropped_files(home, gid) and drop_weights(home, gid):
            dropped.append(gid)
    return dropped


def drop_weights(home: Home, gid: str) -> bool:
    """Delete one generation's weight files, recording their names so `materialize` can
    rebuild them; False when it has none. The caller keeps the anchor and current."""
    directory = home.generations / gid
    files = weight_files(directory)
    if not files:
        return False
    mark_dropped(home, gid, [f.name for f in files])
    make_writable(directory)
    try:
        for f in files:
            f.unlink()
    finally:
        make_read_only(directory)
    from soulctl.generations.derived import DERIVED

    derived = home.generations / DERIVED / gid  # its GGUF, made from the weights now gone
    make_writable(derived)
    shutil.rmtree(derived, ignore_errors=True)
    return True


def rebuild(home: Home, gid: str, out: Path, progress=None, parent_dir: Path | None = None) -> None:
    """Write `gid`'s model files into `out` from its lineage alone (a fold's from its parent's
    weights: `parent_dir`, else the parent's own, else the chain replayed — see replay)."""
    from soulctl.generations.merge_methods.registry import folds
    from soulctl.generations.ties import Layer, resolve_plan, write_merged
    from soulctl.home.recipe_schemas import MergeRecipe

    lineage = read_lineage(home, gid)
    if not lineage.layers:
        from soulctl.generations.base import BaseSource, bundled_gguf, materialize

        src = lineage.source or {}
        path = bundled_gguf() if src.get("package") else Path(src.get("path", ""))
        if not path.exists():
            raise NotFound(f"the base model of {gid} is gone: {path}", hint="restore it to rebuild")
        if src.get("sha256") and path.is_file() and sha256_file(path) != src["sha256"]:
            raise CheckFailed(f"the base model file {path} changed since {gid} was made")
        materialize(BaseSource(src.get("kind", "gguf"), path, src.get("name", "")), out,
                    src.get("dtype") or "float32", progress)
        return
    layers = [Layer(**l) for l in lineage.layers]
    recipe = MergeRecipe(**lineage.recipe)
    anchor = lineage.anchor
    if dropped_files(home, anchor):
        raise NotFound(f"the anchor {anchor} has no weights", hint=f"soulctl gen materialize {anchor}")
    new_from = len(read_lineage(home, lineage.parent).layers) if folds(recipe) else 0
    plan, adapters = resolve_plan(home, lineage.parent, anchor, layers, recipe, new_from)
    if not folds(recipe):
        write_merged(plan, adapters, home.generations / anchor, out, progress)
        return
    scratch = None
    if parent_dir is None:
        parent_dir = scratch = replay(home, lineage.parent, progress)
    try:
        write_merged(plan, adapters, home.generations / anchor, out, progress, parent_dir)
    finally:
        if scratch is not None and scratch != home.generations / lineage.parent:
            shutil.rmtree(scratch, ignore_errors=True)


def replay(home: Home, gid: str, progress=None) -> Path:
    """`gid`'s weights: its own directory, or — dropped by gc — rebuilt into a scratch
    directory by replaying the chain forward from the nearest ancestor that has weights (or
    needs none of its parent's), keeping at most two rebuilt generations on disk at a time."""
    from soulctl.generations.merge_methods.registry import folds
    from soulctl.home.recipe_schemas import MergeRecipe

    chain = []
    while dropped_files(home, gid):
        chain.append(gid)
        lineage = read_lineage(home, gid)
        if not lineage.layers or not folds(MergeRecipe(**lineage.recipe)):
            break  # rebuilt from the anchor (or the base model) alone
        gid = lineage.parent
    else:
        if not chain:
            return home.generations / gid
    previous: Path | None = None
    for step in reversed(chain):
        scratch = home.generations / f".tmp-replay-{step}-{os.getpid()}"
        scratch.mkdir()
        try:
            parent = read_lineage(home, step).parent
            rebuild(home, step, scratch, progress,
                    parent_dir=previous or (home.generations / parent if parent else None))
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        finally:
            if previous is not None:
                shutil.rmtree(previous, ignore_errors=True)
        previous = scratch
    return previous


def materialize(home: Home, ref: str, progress=None) -> dict:
    """Rebuild a generation from its lineage and put back every file the manifest names that
    is missing or differs (dropped by gc, or tampered with); each rebuilt file must equal its
    manifest sha256, else nothing is restored and the check fails naming the files."""
    gid = resolve(home, ref)
    lineage = read_lineage(home, gid)
    manifest = lineage.hashes
    tmp = home.generations / f".tmp-materialize-{gid}-{os.getpid()}"
    tmp.mkdir()
    try:
        rebuild(home, gid, tmp, progress)
        rebuilt = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        missing = sorted(k for k in manifest if k not in rebuilt)
        mismatched = sorted(k for k in manifest if k in rebuilt and rebuilt[k] != manifest[k])
        if mismatched:
            raise CheckFailed(f"rebuilt {gid} differs from its lineage in {', '.join(mismatched)}",
                              hint="the inputs changed (adapters, base model or tool versions)")
        directory = home.generations / gid
        stale = [k for k in manifest if k in rebuilt and not _matches(directory / k, manifest[k])]
        if stale:
            make_writable(directory)
            try:
                for rel in stale:  # replaced, never written into: the old file may be a hard link
                    staged = directory / f".{Path(rel).name}.restore"
                    shutil.copyfile(tmp / rel, staged)
                    os.replace(staged, directory / rel)
            finally:
                make_read_only(directory)
        marker = home.generations / DROPPED_DIR / gid
        if marker.exists():
            marker.unlink()
        unrebuilt = [k for k in missing if not _matches(directory / k, manifest[k])]
        if unrebuilt:
            raise CheckFailed(f"{gid}: could not rebuild {', '.join(unrebuilt)} from its lineage"
                              + (f" (restored {', '.join(sorted(stale))})" if stale else ""),
                              hint="restore those files from a backup")
    finally:
        make_writable(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"id": gid, "files": sorted(k for k in manifest if k in rebuilt),
            "restored": sorted(stale), "identical": True}


def _matches(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256
