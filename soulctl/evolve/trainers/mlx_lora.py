"""`trainer: mlx_lora` — dream on mlx-lm: the same LoRA (rank, alpha, dropout, q/k/v only, from the recipe), the same
examples (only the final assistant reply is learned) and the same loss as the torch path, on
Apple silicon's GPU (or mlx[cpu] elsewhere, slowly). The adapter is converted to PEFT format,
so merge and lineage stay one path; its meta names the trainer.

mlx-lm's LoRA computes y = W·x + scale·(x·a)·b with a: (in, r), b: (r, out), scale = alpha/r.
PEFT's is y = W·x + (alpha/r)·B·A·x, so A = aᵀ and B = bᵀ with lora_alpha = alpha.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from soulctl.errors import InvalidInput, MissingDependency
from soulctl.evolve.trainers.base import LoraTrainer
from soulctl.evolve.trainers.registry import trainer
from soulctl.evolve.training import train_epochs
from soulctl.generations.evaluate import encode_conversation


@trainer("mlx_lora")
class MlxLora(LoraTrainer):
    package, extra = "mlx-lm", "mlx"

    def available(self) -> bool:
        import importlib.util

        return importlib.util.find_spec("mlx_lm") is not None

    def preferred(self) -> bool:
        """Apple silicon with mlx-lm: its GPU, in the published dtype."""
        import platform
        import sys

        return sys.platform == "darwin" and platform.machine() == "arm64" and self.available()

    def memory(self, arch, params: int, recipe, tokens: int, stored_bytes: int) -> list[dict]:
        from soulctl.budget.phases import MLX_RUNTIME, lora_dream

        return lora_dream(arch, params, recipe, tokens, dtype_bytes=stored_bytes, runtime=MLX_RUNTIME,
                          trainer="mlx")

    def train(self, model_dir: Path, conversations: list[list[dict]], recipe, staged: Path,
              progress=None, on_step=None) -> dict:
        return train_adapter_mlx(model_dir, conversations, recipe, staged, progress, on_step)


def train_adapter_mlx(model_dir: Path, conversations: list[list[dict]], recipe,
                      staged: Path, progress=None, on_step=None) -> dict:
    try:
        import mlx.core as mx
        import mlx.nn as nn
        import mlx.optimizers as optim
        from mlx.utils import tree_flatten
        from mlx_lm.tuner.utils import linear_to_lora_layers
    except ImportError:
        raise MissingDependency("mlx-lm", extra="mlx", why="device mlx trains with mlx-lm") from None
    mx.random.seed(recipe.train.seed)
    model, tokenizer, layers = _load(model_dir, recipe)
    examples = [encode_conversation(tokenizer, c, recipe.train.max_seq_len) for c in conversations]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = lambda chunk: _batch(mx, chunk, pad)  # noqa: E731

    def loss_sum(model, ids, labels):
        logits = model(ids[:, :-1]).astype(mx.float32)
        target = labels[:, 1:]
        valid = target != -100
        ce = nn.losses.cross_entropy(logits, mx.where(valid, target, 0), reduction="none")
        return (ce * valid).sum(), valid.sum()

    def mean_loss() -> float:
        sums = [loss_sum(model, *batch(examples[lo:lo + 4])) for lo in range(0, len(examples), 4)]
        return sum(float(s) for s, _ in sums) / max(sum(int(n) for _, n in sums), 1)

    model.freeze()
    before = mean_loss()
    keys = [f"self_attn.{t}" for t in recipe.lora.target_modules]
    linear_to_lora_layers(model, len(layers), {"rank": recipe.lora.r, "scale": recipe.lora.alpha / recipe.lora.r,
                                               "dropout": recipe.lora.dropout, "keys": keys})
    if recipe.train.gradient_checkpointing:  # mlx-lm's: each layer recomputed in the backward pass
        from mlx_lm.tuner.trainer import grad_checkpoint

        grad_checkpoint(layers[0])
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    optimizer = optim.AdamW(learning_rate=recipe.train.learning_rate, weight_decay=0.01)  # torch's AdamW defaults
    loss_and_grad = nn.value_and_grad(model, lambda m, ids, labels: (lambda s, n: s / n)(*loss_sum(m, ids, labels)))

    def step(chunk) -> float:
        loss, grads = loss_and_grad(model, *batch(chunk))
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state, loss)
        return float(loss)

    model.train()
    run = train_epochs(examples, recipe.train.batch_size, recipe.train.epochs, recipe.train.seed, step,
                       "Dreaming (mlx)", progress, on_step)
    model.eval()
    after = mean_loss()
    _save_peft(model, recipe, model_dir, staged, tree_flatten)
    return {"recipe": recipe.model_dump(), "device": "mlx", "trainer": "mlx-lm", "examples": len(examples),
            "trainable_params": int(trainable), "loss_before": round(before, 5), "loss_after": round(after, 5), **run}


def _load(model_dir: Path, recipe):
    """The model (mlx-lm), the torch path's tokenizer (its chat template), its layers."""
    from mlx_lm import load
    from transformers import AutoTokenizer

    model, _ = load(str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    layers = getattr(getattr(model, "model", model), "layers", None)
    if layers is None:
        raise InvalidInput(f"{model_dir.name}: mlx-lm model has no layers to adapt")
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = sorted(set(recipe.lora.target_modules) - present)
    if missing:
        raise InvalidInput(f"{model_dir.name} has no module(s) {', '.join(missing)}",
                           hint="set lora.target_modules in recipes/dream.yaml to this model's attention projections")
    return model, tokenizer, layers


def _batch(mx, chunk, pad: int):
    width = max(len(ids) for ids, _ in chunk)
    ids = np.full((len(chunk), width), pad, dtype=np.int32)
    labels = np.full((len(chunk), width), -100, dtype=np.int32)
    for row, (i, l) in enumerate(chunk):
        ids[row, :len(i)] = i
        labels[row, :len(l)] = l
    return mx.array(ids), mx.array(labels)


def _save_peft(model, recipe, model_dir: Path, staged: Path, tree_flatten) -> None:
    import shutil

    from safetensors.numpy import save_file

    tensors = {}
    for name, value in tree_flatten(model.trainable_parameters()):
        module, part = name.rsplit(".", 1)
        array = np.array(value, dtype=np.float32)
        if part == "lora_a":
            tensors[f"base_model.model.{module}.lora_A.weight"] = np.ascontiguousarray(array.T)
        elif part == "lora_b":
            tensors[f"base_model.model.{module}.lora_B.weight"] = np.ascontiguousarray(array.T)
    if not tensors:
        raise InvalidInput("mlx training produced no LoRA tensors")
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    save_file(tensors, str(staged / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": recipe.lora.r,
              "lora_alpha": recipe.lora.alpha, "lora_dropout": recipe.lora.dropout,
              "target_modules": sorted(recipe.lora.target_modules), "bias": "none",
              "base_model_name_or_path": model_dir.name, "use_rslora": False, "fan_in_fan_out": False}
    (staged / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
