"""Generations compared by what they say (`gen diff A B --behaviour`).

The same prompts — the recipes' probe set unless a file is given — are answered by both
generations, each from its own weights on the transformers backend with the soul's sampling
and one fixed seed per prompt (so an answer that differs is the weights' doing, not the
dice's), and each prompt's own loss is measured under both (mean nats per token: how
natural the generation finds the text). One model is loaded at a time.
"""

from __future__ import annotations

import math
from pathlib import Path

from soulctl.errors import InvalidInput, NotFound
from soulctl.generations import dropped_files, resolve
from soulctl.generations.evaluate import Evaluator
from soulctl.home import Home
from soulctl.progress import progress_task

MAX_PROMPTS = 200


def read_prompts(home: Home, path: Path | None) -> list[str]:
    """The prompts: one per non-empty line of `path`, else the probe set."""
    from soulctl.evolve.anchor import probe_texts

    if path is None:
        return probe_texts(home)
    from soulctl.infile import LIMITS, read_text

    text = read_text(path, LIMITS["prompts"], "prompts file")  # /dev/zero costs 1 MiB, not the machine
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise InvalidInput(f"{path} holds no prompt", hint="one prompt per line")
    if len(prompts) > MAX_PROMPTS:
        raise InvalidInput(f"{path} holds {len(prompts)} prompts, more than {MAX_PROMPTS}",
                           hint="split it: each prompt is answered by both generations")
    return prompts


def compare(home: Home, a: str, b: str, prompts: list[str], seed: int = 0, max_tokens: int = 48,
            progress=None) -> dict:
    """Both generations' answers and losses, prompt by prompt, and a summary."""
    if max_tokens < 1:
        raise InvalidInput("--max-tokens must be at least 1")
    ids = [resolve(home, a), resolve(home, b)]
    for gid in ids:
        if dropped_files(home, gid):
            raise NotFound(f"{gid} has no weights (dropped by gc)", hint=f"soulctl gen materialize {gid}")
    from soulctl.engine.sampling import of_role

    sampling = of_role(home.config.roles["soul"]).but(frequency_penalty=0.0, presence_penalty=0.0)
    seen: dict[str, list[dict]] = {}
    evaluator = Evaluator(home)
    try:
        with progress_task(progress, "Answering", len(prompts) * 2) as task:
            for gid in dict.fromkeys(ids):
                seen[gid] = _answer_all(evaluator, gid, prompts, sampling, seed, max_tokens, task)
    finally:
        evaluator.close()
    rows = []
    for i, prompt in enumerate(prompts):
        first, second = seen[ids[0]][i], seen[ids[1]][i]
        rows.append({"prompt": prompt, "a": first, "b": second,
                     "loss_change": round(second["loss"] - first["loss"], 6),
                     "changed": first["answer"] != second["answer"]})
    changes = [r["loss_change"] for r in rows]
    made = {"a": ids[0], "b": ids[1], "seed": seed, "max_tokens": max_tokens, "sampling": sampling.as_dict(),
            "prompts": rows, "summary": {"prompts": len(rows), "changed": sum(r["changed"] for r in rows),
                                         "mean_loss_change": round(sum(changes) / len(changes), 6)}}
    _keep(home, made)
    return made


def _path(home: Home, a: str, b: str) -> Path:
    return home.data / "behaviour" / f"{a}..{b}.json"


def _keep(home: Home, made: dict) -> None:
    """The last comparison of two generations, kept for the console (data/behaviour/A..B.json)."""
    import json
    import os

    path = _path(home, made["a"], made["b"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(made, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def kept(home: Home, a: str, b: str) -> dict | None:
    """The last `gen diff A B --behaviour` of these two generations, if one was run."""
    import json

    try:
        return json.loads(_path(home, a, b).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _answer_all(evaluator: Evaluator, gid: str, prompts: list[str], sampling, seed: int, max_tokens: int,
                task) -> list[dict]:
    out = []
    for i, prompt in enumerate(prompts):
        answer = evaluator.answer(gid, prompt, sampling.but(seed=seed + i), max_tokens)
        loss = evaluator.text_loss(gid, [prompt])
        out.append({"answer": answer, "loss": round(loss, 6), "ppl": round(math.exp(loss), 4)})
        task.advance(1)
    return out
