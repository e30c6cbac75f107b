"""Generation references: ids, `current`, `anchor`, `~N` parents."""

from __future__ import annotations

import json

import pytest

from soulctl.errors import InvalidInput, NotFound


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
