"""Corpus mounts through the CLI: a real tree, real embeddings, FAISS and tantivy."""

from __future__ import annotations

import json
import os

import pytest
from conftest import copy_home, refused, soulctl

GARDEN = """# Garden notes

Some notes about the vegetable garden behind the house.

## Watering schedule

Tomato plants need a deep soak every morning in July, and every second morning in
September. Never water the leaves in the evening: the damp invites blight.

## Compost

The compost heap wants equal parts green and brown material, turned once a week.
"""

PHYSICS = '''"""Small physics helpers."""

import math


def compute_orbital_period(semi_major_axis, central_mass):
    """Kepler's third law: the time one orbit takes."""
    g = 6.674e-11
    return 2 * math.pi * math.sqrt(semi_major_axis ** 3 / (g * central_mass))


def escape_velocity(mass, radius):
    """How fast a rocket must go to leave a planet for good."""
    g = 6.674e-11
    return math.sqrt(2 * g * mass / radius)
'''


def make_tree(root, outside):
    (root / "docs").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "docs" / "garden.md").write_text(GARDEN)
    (root / "src" / "physics.py").write_text(PHYSICS)
    (root / "notes.rst").write_text("Harbour\n=======\n\nThe ferry leaves the harbour at dawn.\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(200))
    (root / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"))
    with open(root / "huge.txt", "w") as fh:
        line = "a very large file full of repeated words about nothing in particular\n"
        fh.write(line * (50_000_000 // len(line) + 1))
    (root / ".gitignore").write_text("secret.md\n")
    (root / "secret.md").write_text("The vault code is mauve-octopus-42.\n")
    outside.mkdir()
    (outside / "target.md").write_text("Zanzibar flamingo telemetry lives outside the tree.\n")
    os.symlink(outside / "target.md", root / "link.md")


@pytest.fixture(scope="module")
def corpus_home(gen0_home, tmp_path_factory):
    base = tmp_path_factory.mktemp("mount")
    home = base / "home"
    copy_home(gen0_home, home)
    make_tree(base / "tree", base / "outside")
    result = soulctl("mount", "add", "notes", base / "tree", "--json", "--home", home)
    assert result.code == 0, result
    return home, base / "tree", result.json()


def test_add_indexes_and_reports_skips(corpus_home):
    home, tree, report = corpus_home
    assert report["files"] == 3 and report["chunks"] >= 4
    reasons = {s["rel"]: s["reason"] for s in report["skipped_files"]}
    assert reasons == {"logo.png": "binary", "latin1.txt": "not-utf8", "huge.txt": "oversized",
                       "link.md": "symlink"}
    manifest = json.loads((home / "corpora/notes/manifest.json").read_text())
    assert set(manifest["files"]) == {"docs/garden.md", "src/physics.py", "notes.rst"}
    assert manifest["embedder"]["dim"] == 384 and manifest["chunker"].startswith("structure-v1")
    human = soulctl("mount", "ls", "--home", home).stdout
    assert "notes" in human and str(tree) in human


def test_symlink_target_and_ignored_files_are_not_indexed(corpus_home):
    home, _, _ = corpus_home
    for words in ("Zanzibar flamingo telemetry", "mauve-octopus-42 vault"):
        hits = soulctl("mount", "search", words, "--corpus", "notes", "--keyword", "--json",
                       "--home", home).json_lines()
        assert all("Zanzibar" not in h["text"] and "mauve" not in h["text"] for h in hits)


def _top3(home, query, *extra):
    result = soulctl("mount", "search", query, "-k", "3", "--json", "--home", home, *extra)
    assert result.code == 0, result
    return result.json_lines()


def test_known_answers_by_paraphrase_and_identifier(corpus_home):
    home, _, _ = corpus_home
    soulctl("mount", "use", "notes", "--home", home)
    hits = _top3(home, "how often should tomatoes get water in summer")
    garden = [h for h in hits if h["path"] == "docs/garden.md"]
    assert garden and garden[0]["start"] <= 7 <= garden[0]["end"], hits
    assert "Watering schedule" in garden[0]["heading"]
    hits = _top3(home, "compute_orbital_period")
    physics = [h for h in hits if h["path"] == "src/physics.py"]
    assert physics and physics[0]["start"] <= 6 <= physics[0]["end"], hits
    assert physics[0]["cite"] == f"src/physics.py:{physics[0]['start']}-{physics[0]['end']}"
    hits = _top3(home, "speed needed to leave a planet's gravity", "--semantic")
    assert any(h["path"] == "src/physics.py" and h["start"] <= 12 <= h["end"] for h in hits), hits
    human = soulctl("mount", "search", "ferry harbour", "--home", home).stdout
    assert "notes.rst:1-4" in human


def test_refresh_matches_a_fresh_build_and_reads_only_changes(corpus_home, tmp_path):
    home, tree, _ = corpus_home
    work = tmp_path / "home"
    copy_home(home, work)
    live = tmp_path / "tree"
    copy_home(tree, live)
    soulctl("mount", "rm", "notes", "--yes", "--home", work)
    assert soulctl("mount", "add", "notes", live, "--home", work).code == 0
    (live / "docs" / "garden.md").write_text(GARDEN.replace("every morning in July", "at dawn in July"))
    (live / "notes.rst").unlink()
    (live / "src" / "birds.md").write_text("# Birds\n\nThe heron waits motionless in the marsh.\n")
    report = soulctl("mount", "refresh", "notes", "--json", "--home", work).json()
    assert sorted(report["read_files"]) == ["docs/garden.md", "src/birds.md"]
    assert (report["added"], report["changed"], report["deleted"], report["unchanged"]) == (1, 1, 1, 1)
    fresh = soulctl("mount", "add", "fresh", live, "--json", "--home", work).json()
    assert (report["files"], report["chunks"]) == (fresh["files"], fresh["chunks"])
    from soulctl.corpus.mounts import Wardrobe
    from soulctl.embed import embedder_for
    from soulctl.home import Home

    wardrobe, embedder = Wardrobe(Home(work)), embedder_for(Home(work).config, work)  # one load, not eight
    for query in ("heron in the marsh", "watering tomatoes at dawn", "escape_velocity", "compost"):
        a = wardrobe.search(query, embedder, corpora=["notes"])
        b = wardrobe.search(query, embedder, corpora=["fresh"])
        assert a and [(h.cite, round(h.score, 5)) for h in a] == [(h.cite, round(h.score, 5)) for h in b]
    again = soulctl("mount", "refresh", "notes", "--json", "--home", work).json()
    assert again["read"] == 0 and again["chunks"] == report["chunks"]


def test_two_corpora_are_labelled_and_off_removes_one(corpus_home, tmp_path):
    home, _, _ = corpus_home
    work = tmp_path / "home"
    copy_home(home, work)
    other = tmp_path / "other"
    other.mkdir()
    (other / "ships.md").write_text("# Ships\n\nThe ferry crosses the strait to the harbour twice a day.\n")
    assert soulctl("mount", "add", "ships", other, "--home", work).code == 0
    soulctl("mount", "use", "notes", "ships", "--home", work)
    hits = soulctl("mount", "search", "ferry harbour", "--json", "--home", work).json_lines()
    assert {h["corpus"] for h in hits} == {"notes", "ships"}
    assert soulctl("mount", "off", "ships", "--home", work).code == 0
    hits = soulctl("mount", "search", "ferry harbour", "--json", "--home", work).json_lines()
    assert {h["corpus"] for h in hits} == {"notes"}
    rows = soulctl("mount", "ls", "--json", "--home", work).json_lines()
    assert {r["name"]: r["mounted"] for r in rows} == {"notes": True, "ships": False}


def test_retrieve_fits_the_token_budget(corpus_home):
    from transformers import AutoTokenizer

    from soulctl.corpus.mounts import render_hit, retrieve
    from soulctl.embed import embedder_for
    from soulctl.home import Home

    home, _, _ = corpus_home
    soulctl("mount", "use", "notes", "--home", home)
    h = Home(home)
    tokenizer = AutoTokenizer.from_pretrained(str(home / "generations" / "gen-0000"))
    count = lambda text: len(tokenizer(text)["input_ids"])  # noqa: E731
    hits = retrieve(h, "watering tomato plants", embedder_for(h.config, h.root), 120, count)
    assert hits and hits[0].path == "docs/garden.md"
    assert sum(count(render_hit(x)) for x in hits) <= 120
    assert retrieve(h, "watering", embedder_for(h.config, h.root), 0, count) == []




def test_bad_input(corpus_home, tmp_path):
    home, tree, _ = corpus_home
    refused(soulctl("mount", "add", "x", tmp_path / "missing", "--home", home), 3, "does not exist")
    refused(soulctl("mount", "add", "x", tree / "docs" / "garden.md", "--home", home), 5, "is a file")
    refused(soulctl("mount", "add", "a/b", tree, "--home", home), 5, "bad corpus name")
    refused(soulctl("mount", "add", "..", tree, "--home", home), 5, "bad corpus name")
    refused(soulctl("mount", "add", "notes", tree, "--home", home), 4, "already exists")
    work = tmp_path / "home"
    copy_home(home, work)
    soulctl("mount", "off", "--home", work)
    refused(soulctl("mount", "search", "ferry", "--home", work), 3, "no corpus is mounted")
    refused(soulctl("mount", "rm", "notes", "--home", work), 2, "without --yes")
    assert (work / "corpora" / "notes" / "manifest.json").is_file()
    refused(soulctl("mount", "use", "nope", "--home", work), 3, "no corpus 'nope'")
    assert not list((work / "corpora").glob(".tmp-*"))
