"""resonate: score the moments that resonate and select them into a training buffer.

Signals in [0, 1]: explicit marks, novelty (distance from the nearest earlier packet), and an
optional judge. `score` combines the present ones by the recipe's weights into a `combined`
mark; a later explicit mark overrides it. `buffer` selects replies at or above a threshold,
drops near-duplicates by cosine, pairs each with its prompt context and writes
data/buffers/<id>.jsonl in chat format, with the log ids and thresholds beside it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from soulctl.errors import InvalidInput, NotFound
from soulctl.evolve.recipes import ResonateRecipe
from soulctl.home import Home
from soulctl.log import Filters, Packet, Store
from soulctl.progress import progress_task

ROLE_MAP = {"user": "user", "soul": "assistant", "system": "system"}


class NothingNew(InvalidInput):
    """No moment qualifies for a new buffer: not an error for a nightly cycle, which then does
    nothing; exit 5 for `resonate buffer`, which was asked for one."""


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
    marks = []
    for m, v in zip(meta, nov):
        signals = {"novelty": float(v)}
        if m["id"] in explicit:
            signals["mark"] = explicit[m["id"]]
        if judged.get(m["id"]) is not None:
            signals["judge"] = judged[m["id"]]
            marks.append((m["id"], judged[m["id"]], "judge"))
        weights = {k: recipe.weights.get(k, 0.0) for k in signals}
        total = sum(weights.values())
        combined = sum(weights[k] * signals[k] for k in signals) / total if total else 0.0
        marks.append((m["id"], float(v), "novelty"))
        marks.append((m["id"], float(round(combined, 6)), "combined"))
    if marks:
        store.mark_many(marks)
    scored = [m for m in marks if m[2] == "combined"]
    return {"scored": len(scored), "role": role, "rescore": rescore,
            "judged": sum(v is not None for v in judged.values()),
            "mean": float(np.mean([m[1] for m in scored])) if scored else None}


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
    if not hasattr(engine, "choice_probs"):
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


def plot_clusters(result: dict, path: Path) -> None:
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
    fig.savefig(path, dpi=120)
    plt.close(fig)


def learned_ids(home: Home, gid: str | None = None) -> set[str]:
    """The log ids every adapter layer in `gid`'s lineage (default: current) learned from, and
    those its buffers left out as near-duplicates of what they taught."""
    from soulctl.generations import current, read_lineage

    gid = gid or current(home)
    if gid is None:
        return set()
    ids: set[str] = set()
    for adapter in read_lineage(home, gid).adapters:
        meta = home.adapters / adapter / "meta.json"
        if meta.is_file():
            record = json.loads(meta.read_text())
            ids.update(record.get("log_ids") or [])
            ids.update(record.get("covered_ids") or [])
    return ids


def build_buffer(home: Home, store: Store, recipe: ResonateRecipe,
                 threshold: float | None = None, cluster: int | None = None, k: int = 4,
                 role: str = "soul", include_learned: bool = False) -> dict:
    """The resonant replies no layer of the current generation has learned from (all of them
    with `include_learned`), plus the recipe's rehearsal share of learned ones."""
    threshold = recipe.threshold if threshold is None else threshold
    meta, vecs = store.vectors(None)
    resonant = [i for i, m in enumerate(meta) if m["role"] == role and (m["resonance"] or 0) >= threshold]
    learned = set() if include_learned else learned_ids(home)
    chosen = [i for i in resonant if meta[i]["id"] not in learned]
    if chosen and recipe.rehearsal > 0:  # replay: the most resonant of what was learned before
        old = sorted((i for i in resonant if meta[i]["id"] in learned), key=lambda i: -(meta[i]["resonance"] or 0))
        chosen += old[:round(recipe.rehearsal * len(chosen))]
    if cluster is not None:
        groups = clusters(store, threshold, k, role)
        if not 0 <= cluster < k:
            raise InvalidInput(f"--cluster {cluster} is outside 0..{k - 1}")
        wanted = set(groups["clusters"][cluster]["ids"])
        chosen = [i for i in chosen if meta[i]["id"] in wanted]
    if not chosen:
        if resonant and learned:
            raise NothingNew(f"nothing new: all {len(resonant)} {role} packets at or above {threshold} "
                             "were learned by the current generation",
                             hint="talk more first, or --include-learned to train on them again")
        raise NothingNew(f"no {role} packet has resonance at or above {threshold}",
                         hint="score first (soulctl resonate score), mark some, or lower --threshold")
    chosen.sort(key=lambda i: -(meta[i]["resonance"] or 0))
    # greedy: the most resonant of each near-duplicate group stays; a new moment that repeats
    # one already learned, or one kept here, is covered — and counted as learned from now on,
    # so it does not come back in a later buffer
    taught = vecs[[i for i in resonant if meta[i]["id"] in learned]] if learned else vecs[:0]
    kept: list[int] = []
    covered: list[str] = []
    for i in chosen:
        twins = vecs[kept] if meta[i]["id"] in learned else np.vstack([taught, vecs[kept]])
        if not len(twins) or float((twins @ vecs[i]).max()) < recipe.dedup_cosine:
            kept.append(i)
        else:
            covered.append(meta[i]["id"])
    kept.sort(key=lambda i: meta[i]["seq"])
    by_session: dict[str, list[int]] = {}
    for i, m in enumerate(meta):
        by_session.setdefault(m["session"], []).append(i)
    lines, ids, unprompted = [], [], []
    for i in kept:
        session = by_session[meta[i]["session"]]
        pos = session.index(i)
        context = [meta[j] for j in session[max(0, pos - recipe.context_turns):pos]]
        messages = [_message(c) for c in context]
        while messages and messages[0]["role"] == "assistant":
            messages.pop(0)
        if not any(m["role"] == "user" for m in messages):  # a reply with no turn it answers:
            unprompted.append(meta[i]["id"])  # nothing to learn it from (left out, counted)
            continue
        messages.append({"role": "assistant", "content": meta[i]["prose"]})
        lines.append(json.dumps({"messages": messages}, ensure_ascii=False))
        ids.append(meta[i]["id"])
    if not lines:
        raise NothingNew(f"no example to learn from: the {len(unprompted)} new resonant "
                         f"{role} repl{'y' if len(unprompted) == 1 else 'ies'} answer no user turn",
                         hint="talk more first")
    body = ("\n".join(lines) + "\n").encode("utf-8")
    sha = hashlib.sha256(body).hexdigest()
    buffer_id = "buf-" + sha[:12]
    home.buffers.mkdir(parents=True, exist_ok=True)
    path = home.buffers / f"{buffer_id}.jsonl"
    record = {"id": buffer_id, "sha256": sha, "examples": len(lines), "log_ids": ids,
              "threshold": threshold, "dedup_cosine": recipe.dedup_cosine, "cluster": cluster,
              "context_turns": recipe.context_turns, "dropped_duplicates": len(covered), "covered_ids": covered,
              "dropped_unprompted": len(unprompted),
              "skipped_learned": len(resonant) - len([i for i in resonant if meta[i]["id"] not in learned]),
              "created_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}
    for target, data in ((path, body), (path.with_suffix(".json"),
                                        (json.dumps(record, indent=1) + "\n").encode())):
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return {**record, "path": str(path)}


def _message(packet: dict) -> dict:
    role = ROLE_MAP.get(packet["role"], "user")
    content = packet["prose"] if packet["role"] in ROLE_MAP else f"[{packet['role']}] {packet['prose']}"
    return {"role": role, "content": content}
