"""dream: train an adapter on a buffer, by the trainer recipes/dream.yaml names (a LoRA — r 32,
alpha 64, q/k/v only, never the MLP — on peft or mlx-lm; evolve/trainers/). The adapter is
saved in PEFT format and stored content-addressed under data/adapters/<id>/ with the buffer hash
and the base generation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from soulctl.errors import NotFound
from soulctl.generations.adapters import store_adapter
from soulctl.home.recipe_schemas import DreamRecipe
from soulctl.evolve.trainers import pick
from soulctl.evolve.training import read_buffer
from soulctl.generations import current
from soulctl.home import Home

if TYPE_CHECKING:
    from soulctl.soul import Soul

log = logging.getLogger(__name__)

def resolve_buffer(home: Home, ref: str | None) -> Path:
    buffers = sorted(home.buffers.glob("*.jsonl"), key=lambda p: p.stat().st_mtime) if home.buffers.is_dir() else []
    if ref is None:
        if not buffers:
            raise NotFound("no training buffer yet", hint="make one: soulctl resonate buffer")
        return buffers[-1]
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    matches = [p for p in buffers if p.stem == ref or p.stem.startswith(ref)]
    if len(matches) != 1:
        raise NotFound(f"no buffer {ref!r}", hint="see data/buffers/ or run `soulctl resonate buffer`")
    return matches[0]


def dream(soul: Soul, buffer_ref: str | None, recipe: DreamRecipe, progress=None,
          generation: str | None = None, on_step=None) -> dict:
    """A LoRA dreamt on a buffer over `generation` (default: current), stored content-addressed."""
    home = soul.home
    pick(recipe).check(recipe)  # an unknown trainer, or MLP targets, refused before anything loads
    buffer = resolve_buffer(home, buffer_ref)
    conversations = read_buffer(buffer)  # an empty buffer stops here, before any model loads
    gen = generation or current(home)
    if gen is None:
        raise NotFound("no current generation", hint="run `soulctl init`")
    model_dir = home.generations / gen
    if not any(model_dir.glob("*.safetensors")):
        raise NotFound(f"{gen} has no weights (dropped by gc)", hint=f"soulctl gen materialize {gen}")
    staged = home.data / f".staged-adapter-{os.getpid()}"
    meta = train_adapter(model_dir, conversations, recipe, staged, progress, on_step)
    meta.update({"base_generation": gen, "buffer": buffer.stem,
                 "buffer_sha256": hashlib.sha256(buffer.read_bytes()).hexdigest(),
                 "log_ids": _buffer_log_ids(buffer), "covered_ids": _buffer_log_ids(buffer, "covered_ids"),
                 "held_out_ids": held_out_ids(buffer)})
    adapter_id = store_adapter(home, staged, meta)
    return summary(adapter_id, meta)


def train_adapter(model_dir: Path, conversations: list[list[dict]], recipe: DreamRecipe, staged: Path,
                  progress=None, on_step=None) -> dict:
    """The recipe's trainer over `model_dir` (a bundle trained elsewhere, a benchmark)."""
    trainer = pick(recipe)
    trainer.check(recipe)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return trainer.train(model_dir, conversations, recipe, staged, progress, on_step)


def summary(adapter_id: str, meta: dict) -> dict:
    return {"id": adapter_id, **{k: v for k, v in meta.items() if k != "loss_curve"},
            "steps": len(meta["loss_curve"]), "loss_curve": meta["loss_curve"]}


def held_out_ids(buffer: Path) -> list[str]:
    """The replies the buffer's night held out (its record's `holdout`), never to be trained on."""
    try:
        return list((json.loads(buffer.with_suffix(".json").read_text()).get("holdout") or {}).get("held_ids", []))
    except (OSError, ValueError):
        return []


def _buffer_log_ids(buffer: Path, key: str = "log_ids") -> list[str]:
    meta = buffer.with_suffix(".json")
    if meta.is_file():
        try:
            return list(json.loads(meta.read_text()).get(key, []))
        except json.JSONDecodeError:
            return []
    return []
