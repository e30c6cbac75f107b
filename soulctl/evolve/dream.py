"""dream: train a LoRA adapter (r 32, alpha 64, q/k/v only — never the MLP) on a buffer.

peft on torch (cpu / cuda / mps). The adapter is saved in PEFT format and stored
content-addressed under data/adapters/<id>/ with the buffer hash and the base generation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from soulctl.errors import InvalidInput, MissingDependency, NotFound
from soulctl.generations.adapters import store_adapter
from soulctl.home.recipe_schemas import DreamRecipe
from soulctl.evolve.training import read_buffer, train_epochs
from soulctl.generations.evaluate import batches, encode_conversation, mean_loss
from soulctl.generations import current
from soulctl.home import Home

if TYPE_CHECKING:
    from soulctl.soul import Soul

log = logging.getLogger(__name__)

MLP_MODULES = {"gate_proj", "up_proj", "down_proj", "mlp", "fc1", "fc2", "c_fc", "dense_h_to_4h",
               "dense_4h_to_h", "w1", "w2", "w3"}


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


def pick_device(wanted: str) -> str:
    """cuda, mps or cpu for torch; mlx (mlx-lm) when asked, and for auto on Apple silicon."""
    import platform
    import sys

    from soulctl.evolve import mlx_training

    if wanted == "mlx":
        if not mlx_training.available():
            raise MissingDependency("mlx-lm", extra="mlx", why="device mlx trains with mlx-lm")
        return "mlx"
    if wanted == "auto" and sys.platform == "darwin" and platform.machine() == "arm64" and mlx_training.available():
        return "mlx"
    import torch

    if wanted != "auto":
        if wanted == "cuda" and not torch.cuda.is_available():
            raise InvalidInput("device cuda requested but no CUDA GPU is visible")
        if wanted == "mps" and not torch.backends.mps.is_available():
            raise InvalidInput("device mps requested but Metal is not available")
        return wanted
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def trainer_for(wanted: str) -> str:
    """mlx or peft, as pick_device would choose, without importing torch (the budget's question)."""
    import platform
    import sys

    from soulctl.evolve import mlx_training

    if wanted == "mlx" or (wanted == "auto" and sys.platform == "darwin" and platform.machine() == "arm64"
                           and mlx_training.available()):
        return "mlx"
    return "peft"


def check_targets(recipe: DreamRecipe) -> None:
    bad = sorted(set(recipe.lora.target_modules) & MLP_MODULES)
    if bad:
        raise InvalidInput(f"dream trains attention only; {', '.join(bad)} is MLP",
                           hint="target_modules: [q_proj, k_proj, v_proj] in recipes/dream.yaml")


def dream(soul: Soul, buffer_ref: str | None, recipe: DreamRecipe, progress=None,
          generation: str | None = None, on_step=None) -> dict:
    """A LoRA dreamt on a buffer over `generation` (default: current), stored content-addressed."""
    home = soul.home
    check_targets(recipe)
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
                 "log_ids": _buffer_log_ids(buffer), "covered_ids": _buffer_log_ids(buffer, "covered_ids")})
    adapter_id = store_adapter(home, staged, meta)
    return summary(adapter_id, meta)


def summary(adapter_id: str, meta: dict) -> dict:
    return {"id": adapter_id, **{k: v for k, v in meta.items() if k != "loss_curve"},
            "steps": len(meta["loss_curve"]), "loss_curve": meta["loss_curve"]}


def train_adapter(model_dir: Path, conversations: list[list[dict]], recipe: DreamRecipe,
                  staged: Path, progress=None, on_step=None) -> dict:
    """Train a LoRA on `conversations` over the model in `model_dir`; save it (PEFT format)
    into `staged`; return what the adapter's meta.json records about the run."""
    check_targets(recipe)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = pick_device(recipe.device)
    if device == "mlx":
        from soulctl.evolve.mlx_training import train_adapter_mlx

        return train_adapter_mlx(model_dir, conversations, recipe, staged, progress, on_step)
    import torch
    from peft import LoraConfig, get_peft_model

    random.seed(recipe.train.seed)
    torch.manual_seed(recipe.train.seed)
    model, tokenizer = _load(model_dir, recipe, device)
    examples = [encode_conversation(tokenizer, c, recipe.train.max_seq_len) for c in conversations]
    before = mean_loss(model, tokenizer, examples, device=device)
    if recipe.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    peft_model = get_peft_model(model, LoraConfig(
        r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
        target_modules=list(recipe.lora.target_modules), task_type="CAUSAL_LM"))
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=recipe.train.learning_rate)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def step(chunk) -> float:
        ids, labels, mask = (t.to(device) for t in next(batches(chunk, len(chunk), pad)))
        out = peft_model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out.loss.item()

    peft_model.train()
    run = train_epochs(examples, recipe.train.batch_size, recipe.train.epochs, recipe.train.seed, step,
                       "Dreaming", progress, on_step)
    after = mean_loss(peft_model, tokenizer, examples, device=device)
    _save(peft_model, model_dir, staged)
    return {"recipe": recipe.model_dump(), "device": device, "trainer": "peft", "examples": len(examples),
            "trainable_params": sum(p.numel() for p in trainable), "loss_before": round(before, 5),
            "loss_after": round(after, 5), **run}


def _load(model_dir: Path, recipe: DreamRecipe, device: str):
    """The generation on torch in float32, its tokenizer; refused when it lacks a target module."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).to(device)
    modules = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = sorted(set(recipe.lora.target_modules) - modules)
    if missing:
        raise InvalidInput(f"{model_dir.name} has no module(s) {', '.join(missing)}",
                           hint="set lora.target_modules in recipes/dream.yaml to this model's attention projections")
    return model, tokenizer


def _save(peft_model, model_dir: Path, staged: Path) -> None:
    """The adapter in PEFT format, naming its base by generation id, not this machine's path:
    the same training, the same bytes."""
    if staged.exists():
        shutil.rmtree(staged)
    peft_model.save_pretrained(str(staged))
    for extra in staged.glob("README.md"):
        extra.unlink()
    config_path = staged / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = model_dir.name
    if isinstance(config.get("target_modules"), list):  # peft keeps a set: its order follows the hash seed
        config["target_modules"] = sorted(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _buffer_log_ids(buffer: Path, key: str = "log_ids") -> list[str]:
    meta = buffer.with_suffix(".json")
    if meta.is_file():
        try:
            return list(json.loads(meta.read_text()).get(key, []))
        except json.JSONDecodeError:
            return []
    return []
