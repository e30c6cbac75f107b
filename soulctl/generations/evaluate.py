"""Measuring a generation: the one evaluator the anchor gate, `gen diff --behaviour` and the
benches share. A generation's weights are loaded on the transformers backend (by name, one at
a time: RAM), and measured as mean cross-entropy — nats per token — on plain texts (the probe
set) or on conversations (a buffer's replies); it answers prompts with the soul's sampling.
The loss math here is the trainers' too (evolve/trainers/)."""

from __future__ import annotations

import os

from soulctl.errors import NotFound
from soulctl.home import Home


class Evaluator:
    """Generations measured one at a time; the last one stays loaded for the next question."""

    def __init__(self, home: Home):
        self.home = home
        self._gid: str | None = None
        self._engine = None

    def engine(self, gid: str):
        if gid != self._gid:
            from soulctl.engine import open_generation
            from soulctl.generations.build import dropped_files

            if dropped_files(self.home, gid):
                raise NotFound(f"{gid} has no weights (dropped by gc)", hint=f"soulctl gen materialize {gid}")
            self.close()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            self._engine, self._gid = open_generation(self.home, gid, "transformers"), gid
        return self._engine

    def text_loss(self, gid: str, texts: list[str], max_len: int = 256) -> float:
        model, tokenizer = self.engine(gid).torch_model()
        return mean_loss(model, tokenizer, text_examples(tokenizer, texts, max_len))

    def conversation_loss(self, gid: str, conversations: list[list[dict]], max_len: int = 512) -> float:
        model, tokenizer = self.engine(gid).torch_model()
        return mean_loss(model, tokenizer, [encode_conversation(tokenizer, c, max_len) for c in conversations])

    def answer(self, gid: str, prompt: str, sampling, max_tokens: int) -> str:
        return self.engine(gid).chat([{"role": "user", "content": prompt}], max_tokens, sampling)

    def close(self) -> None:
        engine, self._engine, self._gid = self._engine, None, None
        if engine is not None:
            engine.close()


def encode_conversation(tokenizer, messages: list[dict], max_len: int) -> tuple[list[int], list[int]]:
    """(input ids, labels) with -100 on everything but the last assistant reply."""
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True)
    full = tokenizer.apply_chat_template(messages, tokenize=True)
    prompt, full = _ids(prompt), _ids(full)
    if full[:len(prompt)] != prompt:  # a template that rewrites earlier turns: learn it all
        prompt = []
    labels = [-100] * len(prompt) + full[len(prompt):]
    if len(full) > max_len:  # keep the reply: drop the oldest context
        full, labels = full[-max_len:], labels[-max_len:]
    return full, labels


def _ids(value) -> list[int]:
    if isinstance(value, dict) or hasattr(value, "keys"):
        value = value["input_ids"]
    return list(value)


def batches(examples: list[tuple[list[int], list[int]]], size: int, pad_id: int):
    import torch

    for start in range(0, len(examples), size):
        chunk = examples[start:start + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (i, l) in enumerate(chunk):
            ids[row, :len(i)] = torch.tensor(i)
            labels[row, :len(l)] = torch.tensor(l)
            mask[row, :len(i)] = 1
        yield ids, labels, mask


def mean_loss(model, tokenizer, examples, batch_size: int = 4, device=None) -> float:
    """Token-weighted mean cross-entropy over the labelled tokens (on the model's device)."""
    import torch

    device = device or next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for ids, labels, mask in batches(examples, batch_size, pad_id(tokenizer)):
            ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                     target.reshape(-1), ignore_index=-100,
                                                     reduction="sum")
            total += float(loss)
            count += int((target != -100).sum())
    return total / max(count, 1)


def text_examples(tokenizer, texts: list[str], max_len: int = 256) -> list[tuple[list[int], list[int]]]:
    """Plain texts (the probe set) as examples whose every token is scored."""
    out = []
    for text in texts:
        ids = _ids(tokenizer(text)["input_ids"])[:max_len]
        out.append((ids, list(ids)))
    return out


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
