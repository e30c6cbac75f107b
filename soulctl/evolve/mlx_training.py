"""dream on mlx-lm: the same LoRA (rank, alpha, dropout, q/k/v only, from the recipe), the same
examples (only the final assistant reply is learned) and the same loss as the torch path, on
Apple silicon's GPU (or mlx[cpu] elsewhere, slowly). The adapter is converted to PEFT format,
so merge and lineage stay one path; its meta names the trainer.

mlx-lm's LoRA computes y = W·x + scale·(x·a)·b with a: (in, r), b: (r, out), scale = alpha/r.
PEFT's is y = W·x + (alpha/r)·B·A·x, so A = aᵀ and B = bᵀ with lora_alpha = alpha.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np

from soulctl.errors import InvalidInput, MissingDependency
from soulctl.evolve.recipes import DreamRecipe
from soulctl.evolve.training import encode_conversation
from soulctl.progress import progress_task


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("mlx_lm") is not None


def train_adapter_mlx(model_dir: Path, conversations: list[list[dict]], recipe: DreamRecipe,
                      staged: Path, progress=None, on_step=None) -> dict:
    try:
        import mlx.core as mx
        import mlx.nn as nn
        import mlx.optimizers as optim
        from mlx.utils import tree_flatten
        from mlx_lm import load
        from mlx_lm.tuner.utils import linear_to_lora_layers
    except ImportError:
        raise MissingDependency("mlx-lm", extra="mlx", why="device mlx trains with mlx-lm") from None
    from transformers import AutoTokenizer

    seed = recipe.train.seed
    random.seed(seed)
    mx.random.seed(seed)
    model, _ = load(str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))  # the torch path's chat template
    layers = getattr(getattr(model, "model", model), "layers", None)
    if layers is None:
        raise InvalidInput(f"{model_dir.name}: mlx-lm model has no layers to adapt")
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = sorted(set(recipe.lora.target_modules) - present)
    if missing:
        raise InvalidInput(f"{model_dir.name} has no module(s) {', '.join(missing)}",
                           hint="set lora.target_modules in recipes/dream.yaml to this model's attention projections")
    examples = [encode_conversation(tokenizer, c, recipe.train.max_seq_len) for c in conversations]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def batch(chunk):
        width = max(len(ids) for ids, _ in chunk)
        ids = np.full((len(chunk), width), pad, dtype=np.int32)
        labels = np.full((len(chunk), width), -100, dtype=np.int32)
        for row, (i, l) in enumerate(chunk):
            ids[row, :len(i)] = i
            labels[row, :len(l)] = l
        return mx.array(ids), mx.array(labels)

    def loss_sum(model, ids, labels):
        logits = model(ids[:, :-1]).astype(mx.float32)
        target = labels[:, 1:]
        valid = target != -100
        ce = nn.losses.cross_entropy(logits, mx.where(valid, target, 0), reduction="none")
        return (ce * valid).sum(), valid.sum()

    def mean_loss() -> float:
        total, count = 0.0, 0
        for start in range(0, len(examples), 4):
            s, n = loss_sum(model, *batch(examples[start:start + 4]))
            total, count = total + float(s), count + int(n)
        return total / max(count, 1)

    model.freeze()
    before = mean_loss()
    keys = [f"self_attn.{t}" for t in recipe.lora.target_modules]
    linear_to_lora_layers(model, len(layers), {"rank": recipe.lora.r, "scale": recipe.lora.alpha / recipe.lora.r,
                                               "dropout": recipe.lora.dropout, "keys": keys})
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    optimizer = optim.AdamW(learning_rate=recipe.train.learning_rate, weight_decay=0.01)  # torch's AdamW defaults

    def step_loss(model, ids, labels):
        s, n = loss_sum(model, ids, labels)
        return s / n

    loss_and_grad = nn.value_and_grad(model, step_loss)
    curve: list[dict] = []
    tokens = 0
    size = recipe.train.batch_size
    steps = -(-len(examples) // size)
    start = time.perf_counter()
    rng = random.Random(seed)
    model.train()
    with progress_task(progress, "Dreaming (mlx)", steps * recipe.train.epochs) as task:
        for epoch in range(recipe.train.epochs):
            order = examples[:]
            rng.shuffle(order)
            for lo in range(0, len(order), size):
                chunk = order[lo:lo + size]
                ids, labels = batch(chunk)
                loss, grads = loss_and_grad(model, ids, labels)
                optimizer.update(model, grads)
                mx.eval(model.parameters(), optimizer.state, loss)
                tokens += sum(len(i) for i, _ in chunk)
                point = {"step": len(curve) + 1, "epoch": epoch + 1, "loss": round(float(loss), 5)}
                curve.append(point)
                if on_step:
                    on_step(point)
                task.advance(1)
    elapsed = time.perf_counter() - start
    model.eval()
    after = mean_loss()
    _save_peft(model, recipe, model_dir, staged, tree_flatten)
    return {
        "recipe": recipe.model_dump(), "device": "mlx", "trainer": "mlx-lm", "examples": len(examples),
        "trainable_params": int(trainable), "loss_before": round(before, 5), "loss_after": round(after, 5),
        "loss_curve": curve, "tokens": tokens, "tokens_per_s": round(tokens / elapsed, 2) if elapsed else None,
    }


def _save_peft(model, recipe: DreamRecipe, model_dir: Path, staged: Path, tree_flatten) -> None:
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
