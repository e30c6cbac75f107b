"""Hybrid search's last places, for both backends: the turns beside the best hits. An answer
("Thirty-five pounds") says little alone, but it follows the question that matches.

On the dev set: recall@10 80.4% → 84.1%, MRR 0.597 → 0.602 (tests/bench/bench_recall.py); the
best hits keep their places."""

from __future__ import annotations

from typing import Callable

CONTEXT_SHARE = 0.3  # of the k places
CONTEXT_STEPS = (1, -1)  # the next turn first, then the one before


def with_context(fused: list, k: int, neighbours: Callable[[list[int]], dict[int, list[int]]]) -> list:
    """The fused top k (from rrf), its last CONTEXT_SHARE of places given to the turns beside
    the hits above them, in their order. `neighbours(seqs)` is the backend's: each seq's
    neighbours at CONTEXT_STEPS in its session that pass the search's filters."""
    tail = int(k * CONTEXT_SHARE)
    if not tail:
        return fused[:k]
    head = fused[:k - tail]
    near = neighbours([key for key, *_ in head])
    have = {key for key, *_ in head}
    extra = []
    for rank, (key, score, *_rest) in enumerate(head, 1):
        for n in near.get(key, []):
            if n not in have and len(extra) < tail:
                have.add(n)
                extra.append((n, score / 2, {"context": rank}, {}))
    rest = [f for f in fused[k - tail:] if f[0] not in have]
    return (head + extra + rest)[:k]
