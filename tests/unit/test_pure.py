"""Pure pieces, without a model or a soul home on disk beyond a few files: TIES trim and sign
election, reciprocal rank fusion, times and ids, chunkers, generation references, flags."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from soulctl.errors import InvalidInput, NotFound


# -- TIES -------------------------------------------------------------------------------------
def test_trim_keeps_the_largest_magnitudes():
    import torch

    from soulctl.evolve.merge import trim

    delta = torch.tensor([[0.1, -0.9, 0.3], [0.05, 0.7, -0.2]])
    kept = trim(delta, 0.34)  # 2 of 6 entries
    assert kept.tolist() == [[0.0, pytest.approx(-0.9), 0.0], [0.0, pytest.approx(0.7), 0.0]]
    assert trim(delta, 0.01).count_nonzero() == 1  # at least one entry survives
    assert torch.equal(trim(delta, 1.0), delta)


def test_ties_elects_signs_by_weighted_sum_and_drops_dissent():
    import torch

    from soulctl.evolve.merge import ties_delta

    a = torch.tensor([1.0, -2.0, 3.0])
    b = torch.tensor([-3.0, -1.0, 1.0])
    # weights 1 and 1: entry 0 sums to -2 → elected negative, a's +1 is dropped
    mixed = ties_delta([a, b], [1.0, 1.0], [1.0, 1.0], normalize=False, lam=1.0)
    assert mixed.tolist() == [-3.0, -3.0, 4.0]
    # a heavier first layer wins entry 0's election
    heavy = ties_delta([a, b], [1.0, 1.0], [4.0, 1.0], normalize=False, lam=1.0)
    assert heavy.tolist()[0] == pytest.approx(4.0)
    # normalize divides by the agreeing weights; λ scales the result
    norm = ties_delta([a, b], [1.0, 1.0], [1.0, 1.0], normalize=True, lam=0.5)
    assert norm.tolist() == pytest.approx([-1.5, -0.75, 1.0])


# -- fusion -----------------------------------------------------------------------------------
def test_rrf_rewards_agreement_and_breaks_ties_by_best_rank():
    from soulctl.search.fusion import RRF_K, rrf

    fused = rrf({"semantic": [("a", 0.9), ("b", 0.8), ("c", 0.1)], "keyword": [("b", 7.0), ("d", 3.0)]})
    keys = [key for key, *_ in fused]
    assert keys[0] == "b"  # in both rankings
    assert fused[0][1] == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 1))
    assert keys[1:] == ["a", "d", "c"]  # a and d tie on score; a's first rank comes first
    assert fused[0][2] == {"semantic": 2, "keyword": 1} and fused[0][3] == {"semantic": 0.8, "keyword": 7.0}
    assert len(rrf({"x": [("a", 1.0), ("b", 0.5)]}, k=1)) == 1


# -- times and ids ------------------------------------------------------------------------------
def test_parse_time_reads_iso_and_ages():
    from soulctl.log.ingest import parse_time

    assert parse_time("2026-11-24T10:00Z") == dt.datetime(2026, 11, 24, 10, tzinfo=dt.timezone.utc)
    assert parse_time("2026-11-24").tzinfo == dt.timezone.utc
    ago = dt.datetime.now(dt.timezone.utc) - parse_time("2h")
    assert dt.timedelta(hours=1, minutes=59) < ago < dt.timedelta(hours=2, minutes=1)
    assert parse_time("7d ago") < parse_time("6d")
    with pytest.raises(InvalidInput, match="cannot read time"):
        parse_time("last tuesday", "--since")
    with pytest.raises(InvalidInput, match="before the year 1"):
        parse_time("99999999999d", "--since")


def test_ids_are_time_ordered_uuid7():
    from soulctl.log.ingest import check_id
    from soulctl.log.packets import new_id, new_session_id

    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == 5000
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert check_id(ids[0].upper(), "line 1") == ids[0]
    with pytest.raises(InvalidInput, match="line 3: id 'x' is not a UUID"):
        check_id("x", "line 3")
    assert new_session_id().startswith("s-")


# -- chunkers -----------------------------------------------------------------------------------
def test_markdown_chunks_follow_headings():
    from soulctl.corpus.chunk import chunk_file

    text = "# River\n\nThe river runs.\n\n## Delta\n\nIt fans out into the sea.\n"
    chunks = chunk_file("notes/river.md", text)
    assert [c.heading for c in chunks][-1].endswith("Delta")
    assert all(c.path == "notes/river.md" for c in chunks)
    delta = chunks[-1]
    assert "fans out" in delta.text and delta.start <= 5 <= delta.end


def test_python_chunks_follow_functions():
    from soulctl.corpus.chunk import chunk_file

    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    text = f"import os\n\n\ndef alpha():\n{body}\n    return 1\n\n\ndef beta():\n{body}\n    return 2\n"
    chunks = chunk_file("mod.py", text)
    headings = [c.heading for c in chunks]
    assert any("alpha" in h for h in headings) and any("beta" in h for h in headings)
    beta = next(c for c in chunks if "beta" in c.heading)
    assert text.splitlines()[beta.start - 1].startswith("def beta")


def test_long_text_is_windowed_with_overlap():
    from soulctl.corpus.chunk import chunk_file

    text = "\n".join(f"Line {i}: the heron counted fish by the mill pond." for i in range(200))
    chunks = chunk_file("long.txt", text)
    assert len(chunks) > 3 and all(len(c.text) <= 1200 for c in chunks)
    assert all(b.start <= a.end for a, b in zip(chunks, chunks[1:]))  # overlapping windows


# -- generation references ------------------------------------------------------------------------
@pytest.fixture
def history(tmp_path):
    from soulctl.home import Home

    gens = tmp_path / "generations"
    for n, parent in ((0, None), (1, "gen-0000"), (2, "gen-0001")):
        d = gens / f"gen-{n:04d}"
        d.mkdir(parents=True)
        (d / "lineage.json").write_text(json.dumps({"id": d.name, "parent": parent, "anchor": "gen-0000",
                                                    "layers": [], "manifest": {}}))
    (gens / "current").symlink_to("gen-0001")
    (tmp_path / "soul.yaml").write_text("version: 1\n")
    return Home(tmp_path)


def test_generation_references_resolve(history):
    from soulctl.generations import gen_id, gen_number, resolve

    assert gen_id(7) == "gen-0007" and gen_number("gen-0012") == 12
    assert resolve(history, "current") == "gen-0001"
    assert resolve(history, None) == "gen-0001"
    assert resolve(history, "anchor") == "gen-0000"
    assert resolve(history, "2") == "gen-0002"
    assert resolve(history, "gen-0002~2") == "gen-0000"
    assert resolve(history, "current~1") == "gen-0000"
    with pytest.raises(NotFound):
        resolve(history, "gen-0000~1")
    with pytest.raises(NotFound):
        resolve(history, "gen-0042")
    with pytest.raises(InvalidInput):
        gen_number("generation-3")


# -- the command line ------------------------------------------------------------------------------
def test_global_flags_are_hoisted_before_the_command():
    from soulctl.cli.main import hoist_global_flags

    assert hoist_global_flags(["log", "ls", "--json", "-n", "3"]) == ["--json", "log", "ls", "-n", "3"]
    assert hoist_global_flags(["gen", "ls", "--home", "/h", "-q"]) == ["--home", "/h", "-q", "gen", "ls"]
    assert hoist_global_flags(["log", "add", "--home=/h", "x"]) == ["--home=/h", "log", "add", "x"]
    # after `--` nothing is a flag
    assert hoist_global_flags(["log", "add", "--", "--json"]) == ["log", "add", "--", "--json"]


def test_recipe_overrides_merge_and_validate_once():
    from soulctl.evolve.recipes import MergeRecipe, with_overrides

    recipe = with_overrides(MergeRecipe(), {"anchor_weight": 0.5, "layer": {"density": 0.6}})
    assert (recipe.anchor_weight, recipe.layer.density, recipe.layer.weight) == (0.5, 0.6, 0.5)
    with pytest.raises(InvalidInput, match=r"anchor_weight 1.5 is outside \[0, 1\)"):
        with_overrides(MergeRecipe(), {"anchor_weight": 1.5})
    with pytest.raises(InvalidInput, match=r"density 0 is outside \(0, 1\]"):
        with_overrides(MergeRecipe(), {"layer": {"density": 0}})
    with pytest.raises(InvalidInput, match=r"weight -1 is outside \(0, ∞\)"):
        with_overrides(MergeRecipe(), {"layer": {"weight": -1}})


def test_the_judge_and_its_rubric_use_one_scale():
    import yaml

    from soulctl.evolve.recipes import ResonateRecipe
    from soulctl.evolve.resonate import JUDGE_ASK, JUDGE_TOP
    from soulctl.home.recipes import shipped_recipes

    shipped = yaml.safe_load((shipped_recipes() / "resonate.yaml").read_text())["judge_rubric"]
    for rubric in (ResonateRecipe().judge_rubric, shipped):
        assert "Score 0 for" in rubric and f"and {JUDGE_TOP} for" in rubric, rubric
    assert f"to {JUDGE_TOP} (" in JUDGE_ASK


def test_stop_strings_cut_a_stream_without_leaking_a_prefix():
    from soulctl.memory.stream import StopCut

    cut = StopCut(["END", "\n\n"])
    sent = [cut.feed(p) for p in ["Hel", "lo E", "N", "Dmore"]]
    assert "".join(sent) == "Hello " and cut.stopped and cut.text == "Hello "
    assert sent[1] == "lo "  # "E" held back: it might begin END
    cut = StopCut(["END"])
    assert "".join(cut.feed(p) for p in ["Hello E", "NX"]) + cut.flush() == "Hello ENX" and not cut.stopped
    cut = StopCut([])
    assert cut.feed("a") + cut.feed("b") == "ab"
    cut = StopCut(["\n\n"])
    assert cut.feed("one\n") == "one" and cut.feed("\ntwo") == "" and cut.stopped and cut.text == "one"


def test_the_gate_knows_loopback():
    from soulctl.serve.gate import is_loopback

    assert all(map(is_loopback, ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.10", "::", "example.com"]))


def test_a_tsquery_splits_into_its_top_level_terms():
    from soulctl.log.postgres.ranking import conjuncts

    assert conjuncts("'heron' & 'marsh'") == ["'heron'", "'marsh'"]
    assert conjuncts("'a' <-> 'b' & !'c' & ( 'd' | 'e' )") == ["'a' <-> 'b'", "!'c'", "( 'd' | 'e' )"]
    assert conjuncts("'a' & 'b' | 'c'") == ["'a' & 'b' | 'c'"]  # OR binds looser: kept whole
    assert conjuncts("'at&t' & 'it''s'") == ["'at&t'", "'it''s'"]  # quoted lexemes stay whole
