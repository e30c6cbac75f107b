"""soulctl dream: train a LoRA adapter on a resonance buffer."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soulctl.cli import state

HELP = """Train a LoRA adapter on a buffer (default: the newest in data/buffers/).

LoRA r 32, alpha 64, q_proj/k_proj/v_proj only — never the MLP — per recipes/dream.yaml,
with peft on torch (cpu / cuda / mps). The loss curve is printed and saved with the adapter,
which is stored content-addressed under data/adapters/<id>/.
"""


def run(
    buffer: Annotated[Optional[str], typer.Argument(help="A buffer id (buf-…) or a .jsonl path.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the recipe's epochs.", min=1)] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Override the recipe's learning rate.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, mps.")] = None,
) -> None:
    from soulctl.evolve.dream import dream
    from soulctl.evolve.recipes import DreamRecipe, load_recipe

    home = state.home()
    recipe = load_recipe(home, "dream", DreamRecipe)
    updates = {}
    if epochs is not None:
        updates["train"] = recipe.train.model_copy(update={"epochs": epochs})
    if learning_rate is not None:
        updates["train"] = (updates.get("train") or recipe.train).model_copy(update={"learning_rate": learning_rate})
    if device is not None:
        updates["device"] = device
    recipe = recipe.model_copy(update=updates)
    out = state.out

    def on_step(point: dict) -> None:
        if out.verbose:
            out.info(f"step {point['step']:4d}  epoch {point['epoch']}  loss {point['loss']:.4f}")

    with out.progress_bars() as progress:
        result = dream(home, buffer, recipe, progress, on_step=on_step)
    curve = [p["loss"] for p in result["loss_curve"]]
    if not out.json:
        out.info("loss: " + " ".join(f"{x:.3f}" for x in _thin(curve, 16)))
    out.record({k: v for k, v in result.items()}, human=lambda d: (
        f"dreamt {d['id']} on {d['buffer']} from {d['base_generation']}: loss {d['loss_before']:.4f} → "
        f"{d['loss_after']:.4f} over {d['steps']} steps ({d['tokens_per_s']} tokens/s, {d['device']})"))
    out.hint(f"fold it into a new generation: soulctl merge {result['id']}")


def _thin(values: list[float], n: int) -> list[float]:
    if len(values) <= n:
        return values
    step = (len(values) - 1) / (n - 1)
    return [values[round(i * step)] for i in range(n)]
