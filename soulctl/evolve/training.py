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
