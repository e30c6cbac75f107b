"""TIES: soulctl's merge against mergekit's on a tiny random model, and each knob acting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import BASE_ENV
from safetensors.torch import load_file

from soulctl.errors import InvalidInput
from soulctl.evolve.merge import check_recipe, merge
from soulctl.soul import Soul
from soulctl.generations.adapters import store_adapter
from soulctl.generations.ties import Layer, ties_delta, trim
from soulctl.home.recipe_schemas import MergeRecipe
from soulctl.generations import build_generation, set_current
from soulctl.home import Home
from soulctl.home.config import DEFAULT_SOUL_YAML


def tiny_config():
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                       max_position_embeddings=64, tie_word_embeddings=False)


def tiny_home(root: Path, seed: int = 0) -> Home:
    from transformers import LlamaForCausalLM

    root.mkdir(parents=True)
    (root / "soul.yaml").write_text(DEFAULT_SOUL_YAML)
    home = Home(root)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config())
    build_generation(home, "gen-0000", lambda tmp: model.save_pretrained(tmp),
                     {"parent": None, "anchor": "gen-0000", "layers": []})
    set_current(home, "gen-0000")
    return home


def tiny_adapter(home: Home, seed: int, r: int = 4, alpha: float = 8,
                 targets=("q_proj", "k_proj", "v_proj")) -> str:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    base = LlamaForCausalLM.from_pretrained(home.generations / "gen-0000")
    peft_model = get_peft_model(base, LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets)))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    staged = home.data / f"staged-{seed}"
    peft_model.save_pretrained(staged)
    return store_adapter(home, staged, {"base_generation": "gen-0000", "buffer_sha256": f"test{seed}"})


@pytest.fixture
def two_adapters(tmp_path):
    home = tiny_home(tmp_path / "home")
    return home, [tiny_adapter(home, 1), tiny_adapter(home, 2, r=8, alpha=16)]


def test_merge_equals_mergekit_ties(two_adapters, tmp_path):
    home, adapters = two_adapters
    recipe = MergeRecipe(method="ties")  # every layer onto the anchor: what mergekit computes
    soul = Soul(home)
    result = merge(soul, adapters[:1], recipe, density=0.3, weight=0.5)
    result = merge(soul, adapters[1:], recipe, density=0.6, weight=0.8)
    assert result["id"] == "gen-0002" and len(result["layers"]) == 2
    lineage = json.loads((home.generations / "gen-0002" / "lineage.json").read_text())
    config = tmp_path / "mergekit.yaml"
    config.write_text(lineage["mergekit_yaml"])
    out = tmp_path / "mergekit-out"
    proc = subprocess.run([str(Path(sys.executable).parent / "mergekit-yaml"), str(config), str(out),
                           "--lora-merge-cache", str(tmp_path / "cache"), "--no-copy-tokenizer"],
                          capture_output=True, text=True, env=BASE_ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = {}
    for f in out.glob("*.safetensors"):
        theirs.update(load_file(f))
    ours = load_file(home.generations / "gen-0002" / "model.safetensors")
    anchor = load_file(home.generations / "gen-0000" / "model.safetensors")
    assert set(ours) == set(theirs)
    changed = 0
    for name, tensor in ours.items():
        assert torch.allclose(tensor, theirs[name].to(tensor.dtype), rtol=1e-3, atol=1e-3), name
        if any(p in name for p in ("q_proj", "k_proj", "v_proj")):
            changed += not torch.equal(tensor, anchor[name])
        else:  # untouched: the anchor's exact bits
            assert torch.equal(tensor, anchor[name]), name
    assert changed == 6


def test_density_trims_each_layer():
    torch.manual_seed(0)
    delta = torch.randn(64, 48)
    for density in (0.3, 0.1, 1.0):
        kept = (trim(delta, density) != 0).float().mean().item()
        assert kept <= density + 1e-9 and kept >= density - 1 / delta.numel() - 1e-9


def test_weight_and_anchor_weight_scale_a_lone_layer():
    torch.manual_seed(1)
    delta = torch.randn(32, 32)
    base = ties_delta([delta], [0.3], [0.5], normalize=False, lam=0.3)
    double = ties_delta([delta], [0.3], [1.0], normalize=False, lam=0.3)
    assert torch.allclose(double, 2 * base)
    assert torch.allclose(ties_delta([delta], [0.3], [0.5], normalize=False, lam=0.6), 2 * base)
    assert torch.allclose(base, 0.3 * 0.5 * trim(delta, 0.3))
    assert MergeRecipe(anchor_weight=0.7).lam == pytest.approx(0.3)


def test_normalize_never_silently_cancels_a_lone_weight():
    layer = Layer("ad-x", "0" * 64, 0.3, 0.5)
    with pytest.raises(InvalidInput, match="cancels its weight"):
        check_recipe(MergeRecipe(normalize=True), [layer])
    check_recipe(MergeRecipe(normalize=True), [layer, layer])  # two layers: weights act
    check_recipe(MergeRecipe(normalize=False), [layer])


def test_sign_election_drops_disagreeing_entries():
    a = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    b = torch.tensor([[-4.0, -1.0], [1.0, 0.5]])
    mixed = ties_delta([a, b], [1.0, 1.0], [1.0, 1.0], normalize=False, lam=1.0)
    # entry (0,0): signs disagree, sum -3 → only b's -4 survives
    assert torch.equal(mixed, torch.tensor([[-4.0, -3.0], [4.0, 1.0]]))


def test_adapters_are_content_addressed(two_adapters):
    home, adapters = two_adapters
    again = tiny_adapter(home, 1)
    assert again == adapters[0]
    other = tiny_adapter(home, 3)
    assert other not in adapters
