"""The fold merges (`method: fold`, `magmax`): a night is its parent's weights plus the new
layer, so a merge reads only the new adapter; the first night equals TIES; the invariants
hold (untouched tensors the anchor's bytes, the reach bound); and `gen materialize` replays
a dropped chain to its sha256."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file
from test_merge_ties import tiny_adapter, tiny_home

from soulctl.evolve.merge import merge
from soulctl.home.recipe_schemas import MergeRecipe
from soulctl.generations import read_lineage, set_current
from soulctl.generations.adapters import load_adapter
from soulctl.generations.merge_methods.base import invariants
from soulctl.generations.history import gc, materialize
from soulctl.generations.ties import ties_delta
from soulctl.soul import Soul

QKV = ("q_proj", "k_proj", "v_proj")


def weights(home, gid):
    return load_file(home.generations / gid / "model.safetensors")


def night_delta(home, adapter_id, name, recipe):
    adapter = load_adapter(home, adapter_id)
    return ties_delta([adapter.delta(name)], [recipe.layer.density], [recipe.layer.weight], recipe.normalize,
                      recipe.lam)


@pytest.fixture
def nights(tmp_path):
    home = tiny_home(tmp_path / "home")
    return home, [tiny_adapter(home, seed) for seed in (1, 2, 3)]


def test_a_fold_adds_each_night_to_its_parent_and_reads_only_the_new_adapter(nights, tmp_path):
    home, adapters = nights
    recipe = MergeRecipe(method="fold")
    soul = Soul(home)
    first = merge(soul, adapters[:1], recipe)
    # night one: exactly TIES of the lone layer (mergekit-checkable, as a TIES merge is)
    ties_home = tiny_home(tmp_path / "ties")
    shutil.copytree(home.adapters, ties_home.adapters, dirs_exist_ok=True)
    merge(Soul(ties_home), adapters[:1], MergeRecipe())
    assert (home.generations / first["id"] / "model.safetensors").read_bytes() == \
        (ties_home.generations / "gen-0001" / "model.safetensors").read_bytes()
    merge(soul, adapters[1:2], recipe)
    # the oldest adapter's files gone: a fold never reads them again (a TIES merge would)
    shutil.rmtree(home.adapters / adapters[0])
    third = merge(soul, adapters[2:], recipe)
    assert third["id"] == "gen-0003" and len(third["layers"]) == 3  # the lineage keeps every layer
    anchor, two, three = weights(home, "gen-0000"), weights(home, "gen-0002"), weights(home, "gen-0003")
    for name, tensor in three.items():
        if any(p in name for p in QKV):
            expected = (two[name].float() + night_delta(home, adapters[2], name, recipe)).to(tensor.dtype)
            assert torch.allclose(tensor, expected, atol=1e-6), name
        else:
            assert torch.equal(tensor, anchor[name]), name
    touched = {n for n in three if any(p in n for p in QKV)}
    found = invariants(home.generations / "gen-0000", home.generations / "gen-0003", touched)
    assert found["untouched_differing"] == 0 and found["untouched_identical"] == len(three) - len(touched)
    assert read_lineage(home, "gen-0003").recipe["method"] == "fold"


def test_reach_holds_every_tensor_near_the_anchor(nights):
    home, adapters = nights
    free, bound = Soul(home), MergeRecipe(method="fold", reach=0.02)
    for adapter in adapters:
        merge(free, [adapter], bound)
    names = {n for n in weights(home, "gen-0003") if any(p in n for p in QKV)}
    found = invariants(home.generations / "gen-0000", home.generations / "gen-0003", names)
    assert found["max_reach"] <= 0.02 + 1e-5 and found["max_reach"] > 0.019  # on the bound, not past it
    assert found["untouched_differing"] == 0


def test_magmax_keeps_the_larger_change_entry_by_entry():
    from soulctl.generations.merge_methods.registry import method

    base = torch.zeros(4)
    prev = torch.tensor([1.0, -1.0, 0.5, 0.0])
    mixed = torch.tensor([-0.5, -1.0, -2.0, 0.25])
    change = method("magmax").change(MergeRecipe(method="magmax"), base, prev, mixed)
    assert torch.equal(change, torch.tensor([1.0, -2.0, -1.5, 0.25]))
    assert torch.equal(method("fold").change(MergeRecipe(method="fold"), base, prev, mixed), prev + mixed)


def test_a_dropped_chain_is_replayed_to_its_sha256(nights):
    home, adapters = nights
    soul = Soul(home)
    for adapter, method in zip(adapters, ("ties", "fold", "magmax")):  # a history may change method
        merge(soul, [adapter], MergeRecipe(method=method))
    hashes = read_lineage(home, "gen-0003").hashes
    set_current(home, "gen-0000")
    assert gc(home, 0) == ["gen-0001", "gen-0002", "gen-0003"]
    assert not list((home.generations / "gen-0003").glob("*.safetensors"))
    made = materialize(home, "gen-0003")
    assert made["identical"] is True
    from soulctl.generations.files import sha256_file

    assert all(sha256_file(home.generations / "gen-0003" / rel) == sha for rel, sha in hashes.items())
    assert not [p for p in home.generations.iterdir() if p.name.startswith(".tmp")]  # no scratch left
    assert not list((home.generations / "gen-0002").glob("*.safetensors"))  # only what was asked for
