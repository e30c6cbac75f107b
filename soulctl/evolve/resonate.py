"""resonate: score the moments that resonate (the training buffer they fill: buffer.py).

Signals in [0, 1]: explicit marks, novelty (distance from the nearest earlier packet), and an
optional judge. `score` combines the present ones by the recipe's weights into a `combined`
mark. A degenerate reply — empty, short, repetitive, boilerplate, or one of a crowd of
near-identical replies — is capped at FLAWED whatever its novelty. An explicit mark always wins:
`combined` takes its value, and the log reads a mark before any computed score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soulctl.errors import InvalidInput, NotFound
from soulctl.home.recipe_schemas import ResonateRecipe
from soulctl.log import Filters, Packet, Store
from soulctl.progress import progress_task
from soulctl.prose import flaws

FLAWED = 0.05  # the most a degenerate reply scores, whatever its novelty
CROWD = 3  # a reply with this many near-identical others (cosine ≥ TWIN) is boilerplate
TWIN = 0.92


def mark(store: Store, packet_id: str, score: float) -> str:
    """An explicit resonance mark in [0, 1] (a new record; the packet never changes). Returns
    the whole packet id (`packet_id` may be a unique prefix)."""
    if not 0.0 <= score <= 1.0:
        raise InvalidInput(f"resonance {score} is outside [0, 1]")
    packet = store.get(packet_id)
    store.mark(packet.id, score, "mark")
    return packet.id


def novelty(vectors: np.ndarray, block: int = 4096) -> np.ndarray:
    """1 − the highest cosine similarity to any earlier vector (the first packet: 1)."""
    n = len(vectors)
    out = np.ones(n, dtype=np.float32)
    for start in range(0, n, block):
        part = vectors[start:start + block]
        sims = part @ vectors[:start + len(part)].T
        for row in range(len(part)):
            i = start + row
            if i == 0:
                continue
            out[i] = 1.0 - float(np.max(sims[row, :i]))
    return np.clip(out, 0.0, 1.0)


def score(store: Store, recipe: ResonateRecipe, role: str = "soul", judge=None,
          progress=None, rescore: bool = False) -> dict:
    """Novelty for each packet of `role` not scored yet (every one with `rescore`), and a
    judge's score given a judge, then the combined resonance, as marks.

    Novelty is 1 − the highest cosine to any earlier packet, found through the log's vector
    index, so a nightly run costs the day's packets, not the log's size."""
    if rescore:
        meta, vecs = store.vectors(None)
        if not meta:
            raise NotFound("the log is empty: nothing to score", hint="add packets or chat first")
        nov = novelty(vecs)
        keep = [i for i, m in enumerate(meta) if not role or m["role"] == role]
        meta, nov = [meta[i] for i in keep], nov[keep]
    else:
        if not store.count():
            raise NotFound("the log is empty: nothing to score", hint="add packets or chat first")
        # what this run has not scored yet: novelty's mark, or the judge's when one judges
        meta, vecs = store.unmarked("judge" if judge else "novelty", role)
        nov = np.zeros(0, np.float32)
        if meta:
            with progress_task(progress, "Novelty", len(meta)) as task:
                parts = []
                for start in range(0, len(meta), 256):
                    part = meta[start:start + 256]
                    parts.append(store.nearest_earlier(vecs[start:start + 256], [m["seq"] for m in part]))
                    task.advance(len(part))
            nov = np.clip(1.0 - np.concatenate(parts), 0.0, 1.0)
    explicit = store.latest_marks("mark")
    judged = _judge_all(meta, role, recipe, judge, progress) if judge else {}
    crowded = _crowded(vecs[keep] if rescore else vecs) if meta else np.zeros(0, bool)
    marks, flawed = [], 0
    for m, v, crowd in zip(meta, nov, crowded):
        signals = {"novelty": float(v)}
        if judged.get(m["id"]) is not None:
            signals["judge"] = judged[m["id"]]
            marks.append((m["id"], judged[m["id"]], "judge"))
        weights = {k: recipe.weights.get(k, 0.0) for k in signals}
        total = sum(weights.values())
        combined = sum(weights[k] * signals[k] for k in signals) / total if total else 0.0
        if flaws(m["prose"]) or crowd:
            combined, flawed = min(combined, FLAWED), flawed + 1
        if m["id"] in explicit:  # the user's word wins over every computed signal
            combined = explicit[m["id"]]
        marks.append((m["id"], float(v), "novelty"))
        marks.append((m["id"], float(round(combined, 6)), "combined"))
    if marks:
        store.mark_many(marks)
    scored = [m for m in marks if m[2] == "combined"]
    return {"scored": len(scored), "role": role, "rescore": rescore, "flawed": flawed,
            "judged": sum(v is not None for v in judged.values()),
            "mean": float(np.mean([m[1] for m in scored])) if scored else None}


def _crowded(vectors: np.ndarray, block: int = 2048) -> np.ndarray:
    """Whether each reply has CROWD or more near-identical others among those scored together
    (a template the model falls back on, which novelty rewards the first time)."""
    n = len(vectors)
    counts = np.zeros(n, dtype=np.int64)
    for start in range(0, n, block):
        sims = vectors[start:start + block] @ vectors.T
        counts[start:start + block] = (sims >= TWIN).sum(axis=1) - 1
    return counts >= CROWD


def _judge_all(meta: list[dict], role: str, recipe: ResonateRecipe, judge, progress) -> dict:
    """Ask the judge about each reply of `role`, with the turn before it as context."""
    targets = [i for i, m in enumerate(meta) if m["role"] == role]
    out: dict[str, float | None] = {}
    with progress_task(progress, "Judging", len(targets)) as task:
        for i in targets:
            before = meta[i]["before"] or "" if "before" in meta[i] else next(
                (meta[j]["prose"] for j in range(i - 1, -1, -1) if meta[j]["session"] == meta[i]["session"]), "")
            out[meta[i]["id"]] = judge(recipe.judge_rubric, before, meta[i]["prose"])
            task.advance(1)
    return out


JUDGE_TOP = 9  # the judge scores 0..9, one digit; the rubric in recipes/resonate.yaml says so too
JUDGE_ASK = f"Score the reply from 0 (generic) to {JUDGE_TOP} (worth remembering)."


def engine_judge(engine):
    """A judge backed by a chat engine: the rubric and the exchange, then the expected score
    under the model's own probabilities for the digits 0-9 after "Score: " (so even a small
    model that will not answer with a bare number gives a graded judgement)."""
    digits = [str(d) for d in range(JUDGE_TOP + 1)]
    if not engine.supports_probs:
        raise InvalidInput(f"the {engine.name} backend cannot judge: it gives no token probabilities",
                           hint="give the judging role (majordomo, else soul) a local backend: "
                                "llamacpp, transformers or mlx")

    def judge(rubric: str, prompt: str, reply: str) -> float:
        probs = engine.choice_probs([
            {"role": "system", "content": rubric},
            {"role": "user", "content": f"Message:\n{prompt}\n\nReply:\n{reply}\n\n{JUDGE_ASK}"},
        ], "Score: ", digits)
        return round(sum(p * d for p, d in zip(probs, range(JUDGE_TOP + 1))) / JUDGE_TOP, 6)

    return judge


def top(store: Store, n: int = 20, role: str | None = None) -> list[Packet]:
    rows = [p for p in store.list(Filters(role=role, min_resonance=0.0), limit=None)]
    rows.sort(key=lambda p: (-(p.resonance or 0.0), -p.seq))
    return rows[:n]


def clusters(store: Store, threshold: float, k: int, role: str = "soul") -> dict:
    meta, vecs = store.vectors(role)
    keep = [i for i, m in enumerate(meta) if (m["resonance"] or 0) >= threshold]
    if len(keep) < k:
        raise InvalidInput(f"{len(keep)} packets at or above {threshold}: fewer than {k} clusters",
                           hint="lower --threshold or -k")
    from sklearn.cluster import KMeans

    x = vecs[keep]
    model = KMeans(n_clusters=k, n_init=10, random_state=0).fit(x)
    groups = []
    for c in range(k):
        members = [keep[i] for i in np.where(model.labels_ == c)[0]]
        center = model.cluster_centers_[c]
        nearest = max(members, key=lambda i: float(vecs[i] @ center))
        groups.append({"cluster": c, "size": len(members), "ids": [meta[i]["id"] for i in members],
                       "example": meta[nearest]["prose"]})
    return {"threshold": threshold, "k": k, "clusters": groups, "points": x,
            "labels": model.labels_.tolist()}


def plot_clusters(result: dict, path: Path, fmt: str = "png") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = result["points"]
    centered = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    xy = centered @ vt[:2].T
    fig, ax = plt.subplots(figsize=(6, 5))
    scatter = ax.scatter(xy[:, 0], xy[:, 1], c=result["labels"], cmap="tab10", s=18)
    ax.set_title(f"high-resonance moments (≥ {result['threshold']}), {result['k']} clusters")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    fig.colorbar(scatter, ax=ax, label="cluster")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format=fmt)
    plt.close(fig)
