"""Turning chat-format buffers into training tensors, and the loss a model has on them.

Only the final assistant reply of each conversation is learned (the prompt is context): the
same masking serves `dream` (training), `anchor` (absorption) and the benchmarks.
"""

from __future__ import annotations

from pathlib import Path

from soulctl.errors import InvalidInput


ROLES = ("system", "user", "assistant")  # the chat format mlx-lm and TRL read
MAX_LINE = 8 << 20  # one example; a longer line is not a conversation turn


def read_buffer(path: Path) -> list[list[dict]]:
    """A training buffer's examples, each checked: {"messages": [...]} with known roles, text
    that is text, and a non-empty assistant reply last that answers a user turn."""
    from soulctl import jsontext

    conversations = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(iter(lambda: fh.readline(MAX_LINE + 1), b""), 1):
            where = f"{path.name}:{number}"
            if len(raw) > MAX_LINE:
                raise InvalidInput(f"{where}: a line over {MAX_LINE >> 20} MiB is not an example")
            if not raw.strip():
                continue
            try:
                obj = jsontext.loads(raw.decode("utf-8"), where)
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"{where}: not UTF-8 text (byte {exc.start})") from None
            conversations.append(_example(obj, where))
    if not conversations:
        raise InvalidInput(f"buffer {path.name} is empty: nothing to learn",
                           hint="select moments first: soulctl resonate buffer --threshold 0.5")
    return conversations


def _example(obj, where: str) -> list[dict]:
    messages = obj.get("messages") if isinstance(obj, dict) else None
    if (not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages)
            or messages[-1].get("role") != "assistant"):
        raise InvalidInput(f"{where}: expected {{\"messages\": [...]}} ending with an assistant message")
    for i, m in enumerate(messages):
        if m.get("role") not in ROLES:
            raise InvalidInput(f"{where}: message {i} has role {str(m.get('role'))[:40]!r}",
                               hint=f"roles: {', '.join(ROLES)}")
        if not isinstance(m.get("content"), str):
            raise InvalidInput(f"{where}: message {i} needs a string `content`")
    if not messages[-1]["content"].strip():
        raise InvalidInput(f"{where}: the reply is empty: nothing to learn", hint="drop the example")
    if not any(m.get("role") == "user" for m in messages[:-1]):
        raise InvalidInput(f"{where}: the reply answers no user message: nothing to learn it from",
                           hint="give each example the user turn it answers")
    return messages


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


def train_epochs(examples: list, batch_size: int, epochs: int, seed: int, step, label: str,
                 progress=None, on_step=None) -> dict:
    """The loop every trainer shares: each epoch the examples shuffled (by `seed`), cut into
    batches, `step(batch) -> loss` on each. Returns the loss curve, tokens and tokens/s."""
    import random
    import time

    from soulctl.progress import progress_task

    curve: list[dict] = []
    tokens = 0
    steps = -(-len(examples) // batch_size)
    rng = random.Random(seed)
    start = time.perf_counter()
    with progress_task(progress, label, steps * epochs) as task:
        for epoch in range(epochs):
            order = examples[:]
            rng.shuffle(order)
            for lo in range(0, len(order), batch_size):
                chunk = order[lo:lo + batch_size]
                loss = step(chunk)
                tokens += sum(len(ids) for ids, _ in chunk)
                point = {"step": len(curve) + 1, "epoch": epoch + 1, "loss": round(float(loss), 5)}
                curve.append(point)
                if on_step:
                    on_step(point)
                task.advance(1)
    elapsed = time.perf_counter() - start
    return {"loss_curve": curve, "tokens": tokens,
            "tokens_per_s": round(tokens / elapsed, 2) if elapsed else None}


def mean_loss(model, tokenizer, examples, batch_size: int = 4, device: str = "cpu") -> float:
    """Token-weighted mean cross-entropy over the labelled tokens."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for ids, labels, mask in batches(examples, batch_size, _pad_id(tokenizer)):
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


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
