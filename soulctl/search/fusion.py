"""Reciprocal rank fusion: one ranking from several (vector and keyword), by rank alone."""

from __future__ import annotations

from typing import Hashable, Sequence

RRF_K = 60  # the constant of Cormack et al.; damps the weight of the very first ranks


def rrf(rankings: dict[str, Sequence[tuple[Hashable, float]]], k: int | None = None,
        c: int = RRF_K, weights: dict[str, float] | None = None,
        ) -> list[tuple[Hashable, float, dict[str, int], dict[str, float]]]:
    """Fuse named rankings of (key, score), best first → (key, fused score, ranks, scores).
    `weights` scales a ranking's share (1 for any it does not name)."""
    fused: dict[Hashable, float] = {}
    ranks: dict[Hashable, dict[str, int]] = {}
    scores: dict[Hashable, dict[str, float]] = {}
    for name, ranking in rankings.items():
        weight = (weights or {}).get(name, 1.0)
        for rank, (key, score) in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (c + rank)
            ranks.setdefault(key, {})[name] = rank
            scores.setdefault(key, {})[name] = float(score)
    order = sorted(fused, key=lambda key: (-fused[key], min(ranks[key].values())))
    if k is not None:
        order = order[:k]
    return [(key, fused[key], ranks[key], scores[key]) for key in order]
