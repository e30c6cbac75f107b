"""The resonance map: the soul's replies' embeddings projected to two dimensions (PCA), at
most MAX_POINTS of them drawn, the replies the next night would learn from always among them,
grouped by a small k-means, each with its resonance.

Computed here, in the server, and cached in data/console/resonance.json under a key that
changes when a reply is added, scored or marked, or the current generation moves (what was
learned changes): a page reads the cache, and the work is redone only when the key moved.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from soulctl.soul import Soul

MAX_POINTS = 5000
CLUSTERS = 4
ROLE = "soul"


def resonance_map(soul: Soul) -> dict:
    """The cached map when nothing it shows has changed, else one computed now and cached."""
    key = _key(soul)
    path = soul.home.data / "console" / "resonance.json"
    cached: dict = {}
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached
    except (OSError, ValueError):
        pass
    made = {"key": key, **_compute(soul, cached.get("flawed") or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(made))
    os.replace(tmp, path)
    return made


def _key(soul: Soul) -> str:
    from soulctl.generations import current
    from soulctl.log import Filters

    store = soul.store
    marks = sorted(store.latest_marks("mark").items())
    parts = [store.count(Filters(role=ROLE)), store.count(Filters(role=ROLE, min_resonance=0.0)),
             current(soul.home), marks]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


def _compute(soul: Soul, flawed: dict[str, bool]) -> dict:
    """The map now; `flawed`: whether a reply is degenerate, by id, as checked before (a reply
    never changes, so a mark does not check them all again), extended here."""
    from soulctl.evolve.buffer import learned_ids
    from soulctl.prose import flaws

    meta, vecs = soul.store.vectors(ROLE)
    threshold = soul.recipe("resonate").threshold
    if len(meta) < 3:
        return {"threshold": threshold, "points": [], "replies": len(meta), "next_buffer": 0, "flawed": {}}
    learned, marked = learned_ids(soul.home), soul.store.latest_marks("mark")

    def degenerate(m: dict) -> bool:
        if m["id"] not in flawed:
            flawed[m["id"]] = bool(flaws(m["prose"]))
        return flawed[m["id"]]

    nxt = [(m["resonance"] or 0) >= threshold and m["id"] not in learned
           and (m["id"] in marked or not degenerate(m)) for m in meta]
    drawn = _pick(meta, nxt)
    x = vecs[drawn]
    centered = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    xy = centered @ vt[:2].T
    labels = _kmeans(x, min(CLUSTERS, len(drawn)))
    points = [{"id": meta[i]["id"], "x": round(float(xy[j, 0]), 5), "y": round(float(xy[j, 1]), 5),
               "resonance": meta[i]["resonance"], "cluster": int(labels[j]), "next": bool(nxt[i]),
               "prose": meta[i]["prose"][:160]} for j, i in enumerate(drawn)]
    return {"threshold": threshold, "points": points, "replies": len(meta), "next_buffer": int(sum(nxt)),
            "flawed": flawed}


def _pick(meta: list[dict], nxt: list[bool]) -> list[int]:
    """Every reply of the next buffer (its MAX_POINTS most resonant, where more qualify), then
    the rest by a hash of their ids up to MAX_POINTS: the same replies from one page to the next."""
    must = sorted((i for i, n in enumerate(nxt) if n), key=lambda i: -(meta[i].get("resonance") or 0))[:MAX_POINTS]
    rest = [i for i, n in enumerate(nxt) if not n]
    room = MAX_POINTS - len(must)
    if len(rest) > room:
        rest = sorted(rest, key=lambda i: hashlib.blake2b(meta[i]["id"].encode(), digest_size=8).digest())[:room]
    return sorted(must + rest)


def _kmeans(x: np.ndarray, k: int, rounds: int = 12) -> np.ndarray:
    """Cosine k-means, seeded by farthest points from the first: reproducible, numpy only."""
    centers = [x[0]]
    for _ in range(1, k):
        sims = np.max(x @ np.stack(centers).T, axis=1)
        centers.append(x[int(np.argmin(sims))])
    c = np.stack(centers)
    labels = np.zeros(len(x), dtype=int)
    for _ in range(rounds):
        labels = np.argmax(x @ c.T, axis=1)
        for j in range(k):
            members = x[labels == j]
            if len(members):
                mean = members.mean(axis=0)
                c[j] = mean / (np.linalg.norm(mean) or 1.0)
    return labels
