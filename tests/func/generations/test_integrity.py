"""A generation cannot be forged quietly: `gen verify` (and the cache `chat --strict` and
`serve` trust) fails naming the file on any change to a generation's files or lineage that is
not a new generation — a rewritten manifest, a deleted file with its entry removed, a forged
gc marker, a lineage resealed by someone holding the key (generation 0 is re-derived from the
shipped model), a malformed lineage."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import flip_byte, refused, soulctl, unshare
from soulctl.generations import build_generation, integrity
from soulctl.home import Home


def writable(path: Path) -> None:
    os.chmod(path.parent, 0o755)
    if path.exists():
        unshare(path)


def rewrite_lineage(home: Path, gid: str, change, reseal: bool = False) -> None:
    path = home / "generations" / gid / "lineage.json"
    writable(path)
    record = json.loads(path.read_text())
    change(record)
    if reseal:  # a forger who stole data/lineage.key
        parent = integrity.raw_lineage(Home(home), record["parent"]) if record.get("parent") else None
        record = integrity.seal(Home(home), record, parent)
    path.write_text(json.dumps(record, indent=2))


def child_of_anchor(home: Path) -> str:
    """gen-0001, built by the library's own build path (its weights the anchor's)."""
    src = home / "generations" / "gen-0000"

    def write(tmp: Path) -> None:
        for f in src.iterdir():
            if f.name != "lineage.json":
                shutil.copyfile(f, tmp / f.name)

    build_generation(Home(home), "gen-0001", write, {"parent": "gen-0000", "anchor": "gen-0000",
                                                       "created_at": "2026-12-07T00:00:00+00:00", "layers": []})
    return "gen-0001"


def failed(home: Path, gid: str, *words: str):
    result = soulctl("--home", home, "--json", "gen", "verify", gid)
    assert result.code == 1, result
    record = result.json()
    text = json.dumps(record)
    for word in words:
        assert word in text, (word, record)
    return record


def test_a_fresh_home_verifies_sealed_and_chained(home):
    child_of_anchor(home)
    result = soulctl("--home", home, "gen", "verify")
    assert result.code == 0, result
    assert "gen-0001  ok" in result.stdout and "chained to the anchor" in result.stdout
    lineage = json.loads((home / "generations" / "gen-0001" / "lineage.json").read_text())
    anchor = json.loads((home / "generations" / "gen-0000" / "lineage.json").read_text())
    assert lineage["parent_sha256"] == integrity.digest(anchor) and len(lineage["seal"]) == 64
    assert oct((home / "data" / "lineage.key").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("gid", ["gen-0000", "gen-0001"])
def test_changed_weights_with_the_manifest_rewritten_to_match(home, gid):
    child_of_anchor(home)
    weights = home / "generations" / gid / "model.safetensors"
    writable(weights)
    flip_byte(weights, 4096)
    failed(home, gid, "model.safetensors")  # first as a plain change
    from soulctl.generations import sha256_file

    rewrite_lineage(home, gid, lambda r: r["manifest"]["model.safetensors"].update(sha256=sha256_file(weights)))
    failed(home, gid, f"{gid}/lineage.json was changed after it was sealed")
    if gid == "gen-0000":  # the child names the rewritten parent too
        failed(home, "gen-0001", "gen-0000/lineage.json")


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json"])
def test_a_deleted_file_with_its_manifest_entry_removed(home, name):
    target = home / "generations" / "gen-0000" / name
    writable(target)
    target.unlink()
    failed(home, "gen-0000", name)
    rewrite_lineage(home, "gen-0000", lambda r: r["manifest"].pop(name))
    failed(home, "gen-0000", "gen-0000/lineage.json was changed after it was sealed")
    # with the manifest's own digest rewritten as well
    rewrite_lineage(home, "gen-0000", lambda r: r.update(manifest_sha256=integrity.manifest_digest(r["manifest"])))
    failed(home, "gen-0000", "gen-0000/lineage.json")


@pytest.mark.parametrize("marker", [["model.safetensors"], {"generation": "gen-0001", "files": ["model.safetensors"],
                                                           "seal": "0" * 64}])
def test_a_forged_gc_marker_does_not_hide_a_deleted_file(home, marker):
    child_of_anchor(home)
    weights = home / "generations" / "gen-0001" / "model.safetensors"
    writable(weights)
    weights.unlink()
    dropped = home / "generations" / ".dropped"
    dropped.mkdir(exist_ok=True)
    (dropped / "gen-0001").write_text(json.dumps(marker))
    failed(home, "gen-0001", "missing", "model.safetensors")


def test_gc_seals_its_marker_and_drops_the_derived_gguf(home):
    child_of_anchor(home)
    child_of_anchor_2 = "gen-0002"
    src = home / "generations" / "gen-0001"
    build_generation(Home(home), child_of_anchor_2, lambda tmp: [shutil.copyfile(f, tmp / f.name) for f in src.iterdir()
                                                                 if f.name != "lineage.json"],
                     {"parent": "gen-0001", "anchor": "gen-0000", "layers": []})
    soulctl("--home", home, "gen", "use", "gen-0002")
    derived = home / "generations" / ".derived" / "gen-0001"
    derived.mkdir(parents=True)
    (derived / "model.gguf").write_bytes(b"GGUF" + bytes(64))
    gc = soulctl("--home", home, "--json", "gen", "gc", "--keep", "1")
    assert gc.code == 0 and gc.json()["dropped"] == ["gen-0001"], gc
    assert not derived.exists()
    ok = soulctl("--home", home, "--json", "gen", "verify", "gen-0001")
    assert ok.code == 0 and ok.json()["dropped"], ok


@pytest.mark.parametrize("forge", ["weights", "tokenizer"])
def test_a_forger_with_the_key_cannot_change_the_anchor(home, forge):
    """Resealed with the stolen key, generation 0 still differs from the shipped model
    re-derived, and its child's link to it breaks."""
    child_of_anchor(home)
    name = "model.safetensors" if forge == "weights" else "tokenizer.json"
    target = home / "generations" / "gen-0000" / name
    writable(target)
    flip_byte(target, 200)
    from soulctl.generations import sha256_file

    rewrite_lineage(home, "gen-0000", lambda r: r["manifest"][name].update(sha256=sha256_file(target)), reseal=True)
    failed(home, "gen-0000", f"gen-0000/{name} is not what the shipped model derives to")
    failed(home, "gen-0001", "gen-0000/lineage.json is not the lineage its child was made from")


def test_strict_chat_and_the_verify_cache_refuse_a_forgery(home):
    ok = soulctl("--home", home, "gen", "verify")
    assert ok.code == 0
    weights = home / "generations" / "gen-0000" / "tokenizer.json"
    writable(weights)
    flip_byte(weights, 10, 0x01)
    from soulctl.generations import sha256_file

    rewrite_lineage(home, "gen-0000", lambda r: r["manifest"]["tokenizer.json"].update(sha256=sha256_file(weights)))
    # the forger also rewrites the verified-stats cache to match the new files
    cache = home / "generations" / ".verified" / "gen-0000.json"
    if cache.exists():
        kept = json.loads(cache.read_text())
        kept["stats"] = {k: [0, 0, 0, 0] for k in kept["stats"]}
        cache.write_text(json.dumps(kept))
    refused(soulctl("--home", home, "chat", "--strict", "hello"), 1, "gen-0000/lineage.json")


@pytest.mark.parametrize("layers", ['"abc"', "[1, 2]", '[{"adapter": 5}]', '{"x": 1}'])
def test_a_malformed_lineage_is_refused_by_name_never_a_crash(home, layers):
    rewrite_lineage(home, "gen-0000", lambda r: r.update(layers=json.loads(layers)))
    for args in (["gen", "ls"], ["gen", "show"], ["gen", "diff", "0", "0"], ["evolve", "--dry-run"]):
        refused(soulctl("--home", home, *args), 5, "lineage.json")
    failed(home, "gen-0000", "gen-0000/lineage.json")


def test_a_home_made_before_sealing_is_sealed_once_after_checking(home):
    for gid in ("gen-0000",):
        rewrite_lineage(home, gid, lambda r: [r.pop(k, None) for k in ("seal", "manifest_sha256", "parent_sha256")])
    (home / "data" / "lineage.key").unlink()
    failed(home, "gen-0000", "lineage.key is missing")
    refused(soulctl("--home", home, "gen", "seal"), 2, "--yes")
    # a changed file is not sealed into the home's history
    target = home / "generations" / "gen-0000" / "config.json"
    writable(target)
    original = target.read_bytes()
    target.write_bytes(original.replace(b"{", b"{ ", 1))
    refused(soulctl("--home", home, "gen", "seal", "--yes"), 1, "config.json")
    assert not (home / "data" / "lineage.key").exists()
    target.write_bytes(original)
    sealed = soulctl("--home", home, "--json", "gen", "seal", "--yes")
    assert sealed.code == 0 and sealed.json()["sealed"] == ["gen-0000"], sealed
    assert soulctl("--home", home, "gen", "verify").code == 0
