"""`trainer: peft_lora` — a LoRA on peft and torch (cpu, cuda, mps): the weights in float32, the
LoRA on the recipe's targets, AdamW, only the final assistant reply learned."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from soulctl.errors import InvalidInput
from soulctl.evolve.trainers.base import LoraTrainer
from soulctl.evolve.trainers.registry import trainer
from soulctl.evolve.training import train_epochs
from soulctl.generations.evaluate import batches, encode_conversation, mean_loss


@trainer("peft_lora")
class PeftLora(LoraTrainer):
    package, extra = "peft", None

    def available(self) -> bool:
        import importlib.util

        return importlib.util.find_spec("peft") is not None and importlib.util.find_spec("torch") is not None

    def preferred(self) -> bool:
        return False  # the default when no other trainer prefers the machine

    def memory(self, arch, params: int, recipe, tokens: int, stored_bytes: int) -> list[dict]:
        from soulctl.budget.phases import TORCH_RUNTIME, lora_dream

        return lora_dream(arch, params, recipe, tokens, dtype_bytes=4, runtime=TORCH_RUNTIME, trainer="peft")

    def train(self, model_dir: Path, conversations: list[list[dict]], recipe, staged: Path,
              progress=None, on_step=None) -> dict:
        return train_adapter(model_dir, conversations, recipe, staged, progress, on_step)


def pick_device(wanted: str) -> str:
    """cuda, mps or cpu for torch (`auto`: the first this machine has)."""
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


def train_adapter(model_dir: Path, conversations: list[list[dict]], recipe,
                  staged: Path, progress=None, on_step=None) -> dict:
    """Train a LoRA on `conversations` over the model in `model_dir`; save it (PEFT format)
    into `staged`; return what the adapter's meta.json records about the run."""
    device = pick_device(recipe.device)
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


def _load(model_dir: Path, recipe, device: str):
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
