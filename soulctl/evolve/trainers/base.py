"""What every trainer is (mergekit's merge methods are the model for the seam): a name the
recipe uses (`trainer:` in recipes/dream.yaml), whether it can run here and whether `auto`
prefers it on this machine, its own RAM need for the budget's night, the modules its adapter
changes, and the training itself — conversations in chat format (`{"messages": [...]}`, the last
one the reply to learn) in, an adapter in PEFT format out, with what its meta.json records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from soulctl.errors import InvalidInput

MLP_MODULES = {"gate_proj", "up_proj", "down_proj", "mlp", "fc1", "fc2", "c_fc", "dense_h_to_4h",
               "dense_4h_to_h", "w1", "w2", "w3"}


class Trainer(Protocol):
    name: str

    def available(self) -> bool:
        """Its packages are installed (training would not fail for want of them)."""

    def preferred(self) -> bool:
        """`trainer: auto` picks it on this machine (the first trainer that says so)."""

    def check(self, recipe) -> None:
        """Refuse a recipe it cannot train, before anything loads."""

    def memory(self, arch, params: int, recipe, tokens: int, stored_bytes: int) -> list[dict]:
        """Its RAM need training over a model of `arch` and `params` on examples of `tokens`, by
        component ({"name", "bytes", "detail"}): the budget's dream phase (budget/phases.py
        holds the shared estimates)."""

    def touches(self, recipe) -> tuple[str, ...]:
        """The modules its adapter changes (the merge's largest tensor is among them)."""

    def train(self, model_dir: Path, conversations: list[list[dict]], recipe, staged: Path,
              progress=None, on_step=None) -> dict:
        """Train over the generation in `model_dir`, save the adapter (PEFT format) into
        `staged`, return what meta.json records (recipe, trainer, examples, losses, curve)."""


class LoraTrainer:
    """What the LoRA trainers share: attention only, never the MLP (DESIGN §6)."""

    def check(self, recipe) -> None:
        bad = sorted(set(recipe.lora.target_modules) & MLP_MODULES)
        if bad:
            raise InvalidInput(f"dream trains attention only; {', '.join(bad)} is MLP",
                               hint="target_modules: [q_proj, k_proj, v_proj] in recipes/dream.yaml")

    def touches(self, recipe) -> tuple[str, ...]:
        return tuple(recipe.lora.target_modules)
