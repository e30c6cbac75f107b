"""docs/extending.md's file lists are true: a toy trainer and a toy merge method, each one
module dropped into its registry's package plus one recipe line, run through `evolve --dry-run`
(and the night's budget), a real `dream` and a real `merge` into a generation that verifies."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import REPO, soulctl

TRAINER = '''
"""trainer: toy — a deterministic LoRA on one attention projection, for the extension test."""

import json

import numpy as np

from soulctl.evolve.trainers.base import LoraTrainer
from soulctl.evolve.trainers.registry import trainer


@trainer("toy")
class Toy(LoraTrainer):
    def available(self):
        return True

    def preferred(self):
        return False

    def memory(self, arch, params, recipe, tokens, stored_bytes):
        return [{"name": "toy", "bytes": params * stored_bytes, "detail": "the weights, once"}]

    def touches(self, recipe):
        return ("q_proj",)

    def train(self, model_dir, conversations, recipe, staged, progress=None, on_step=None):
        from safetensors.numpy import save_file

        hidden = json.loads((model_dir / "config.json").read_text())["hidden_size"]
        rng = np.random.default_rng(len(conversations))
        staged.mkdir(parents=True)
        key = "base_model.model.model.layers.0.self_attn.q_proj"
        save_file({f"{key}.lora_A.weight": rng.normal(0, 0.01, (4, hidden)).astype(np.float32),
                   f"{key}.lora_B.weight": rng.normal(0, 0.01, (hidden, 4)).astype(np.float32)},
                  str(staged / "adapter_model.safetensors"))
        (staged / "adapter_config.json").write_text(json.dumps(
            {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}))
        return {"trainer": "toy", "examples": len(conversations), "loss_before": 1.0, "loss_after": 0.9,
                "loss_curve": [{"step": 1, "epoch": 1, "loss": 0.9}]}
'''

METHOD = '''
"""method: halfway — the night's change at half strength onto the anchor, for the extension test."""

from soulctl.generations.merge_methods.registry import merge_method


@merge_method("halfway")
class Halfway:
    folds = False

    def change(self, recipe, base, prev, mixed):
        return 0.5 * mixed
'''

PLACES = {"trainer": (REPO / "soulctl" / "evolve" / "trainers" / "toy_trainer.py", TRAINER),
          "method": (REPO / "soulctl" / "generations" / "merge_methods" / "toy_halfway.py", METHOD)}


@pytest.fixture
def extended():
    """The two modules in place for one test, then gone (from disk and from this process)."""
    for path, text in PLACES.values():
        assert not path.exists()
        path.write_text(text)
    try:
        yield
    finally:
        from soulctl.evolve.trainers import registry as trainers
        from soulctl.generations.merge_methods import registry as methods

        for path, _ in PLACES.values():
            path.unlink(missing_ok=True)
        trainers._TRAINERS.pop("toy", None)
        methods._METHODS.pop("halfway", None)
        for name in ("soulctl.evolve.trainers.toy_trainer", "soulctl.generations.merge_methods.toy_halfway"):
            sys.modules.pop(name, None)


def test_a_toy_trainer_and_merge_method_are_a_module_and_a_recipe_line_each(home, tmp_path, extended):
    dream_yaml, merge_yaml = home / "recipes" / "dream.yaml", home / "recipes" / "merge.yaml"
    dream_yaml.write_text(dream_yaml.read_text() + "\ntrainer: toy\n")        # the one recipe line each
    merge_yaml.write_text(re.sub(r"(?m)^method: .*$", "method: halfway", merge_yaml.read_text()))
    assert "method: halfway" in merge_yaml.read_text()

    plan = soulctl("--home", home, "--json", "evolve", "--dry-run")
    assert plan.code == 0, plan
    steps = plan.json()["plan"]
    assert steps["dream"]["trainer"] == "toy" and steps["merge"]["method"] == "halfway"
    budget = soulctl("--home", home, "--json", "budget", "--phase", "dream").json()["phases"]["dream"]
    assert budget["training"]["trainer"] == "toy"
    assert [c["name"] for c in budget[budget["recipe"]]["components"]] == ["toy"]  # its own RAM plan

    buffer = tmp_path / "buffer.jsonl"
    buffer.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Tell me about {w}."},
                                                       {"role": "assistant", "content": f"{w} is a river."}]}) + "\n"
                              for w in ("the Thames", "the Severn")))
    dreamt = soulctl("--home", home, "--json", "dream", buffer)
    assert dreamt.code == 0, dreamt
    adapter = dreamt.json()["id"]
    assert dreamt.json()["trainer"] == "toy"
    merged = soulctl("--home", home, "--json", "merge", adapter)
    assert merged.code == 0, merged
    gid = merged.json()["id"]
    lineage = json.loads((home / "generations" / gid / "lineage.json").read_text())
    assert lineage["recipe"]["method"] == "halfway" and lineage["layers"][0]["adapter"] == adapter
    assert soulctl("--home", home, "gen", "verify", gid).code == 0
    changed = soulctl("--home", home, "--json", "gen", "diff", "gen-0000", gid).json()["weights"]["modules"]
    assert changed["q_proj"] > 0 and changed.get("k_proj", 0) == 0  # the toy touched q only


def test_an_unknown_trainer_or_method_is_named_with_the_ones_there_are(home):
    (home / "recipes" / "dream.yaml").write_text((home / "recipes" / "dream.yaml").read_text() + "\ntrainer: nope\n")
    refused = soulctl("--home", home, "evolve", "--dry-run")
    assert refused.code == 5 and "unknown trainer 'nope'" in refused.stderr and "peft_lora" in refused.stderr
    (home / "recipes" / "dream.yaml").write_text((home / "recipes" / "dream.yaml").read_text().replace("trainer: nope", ""))
    merge_yaml = home / "recipes" / "merge.yaml"
    merge_yaml.write_text(re.sub(r"(?m)^method: .*$", "method: nope", merge_yaml.read_text()))
    refused = soulctl("--home", home, "evolve", "--dry-run")
    assert refused.code == 5 and "unknown merge method 'nope'" in refused.stderr and "magmax" in refused.stderr
