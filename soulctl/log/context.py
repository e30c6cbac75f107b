"""Hybrid search's last places, for both backends: the turns beside the best hits. An answer
("Thirty-five pounds") says little alone, but it follows the question that matches.

On the dev set: recall@10 80.4% → 84.1%, MRR 0.597 → 0.602 (tests/bench/bench_recall.py); the
best hits keep their places."""

from __future__ import annotations

from typing import Callable, Sequence

from soulctl.log.packets import Filters
from soulctl.log.rows import where_clause

CONTEXT_SHARE = 0.3  # of the k places
CONTEXT_STEPS = (1, -1)  # the next turn first, then the one before

Fetch = Callable[[str, Sequence], list]


def neighbours(fetch: Fetch, seqs: list[int], filters: Filters, mark: str) -> dict[int, list[int]]:
    """Each seq's neighbours (seq + 1, then seq − 1) in the same session that pass the filters;
    `fetch(sql, params)` runs a query on the backend, whose placeholder is `mark`."""
    if not seqs:
        return {}
    wanted = {n for seq in seqs for n in (seq + d for d in CONTEXT_STEPS) if n > 0}
    where, params = where_clause(filters, mark)
    listed = ", ".join(str(int(n)) for n in wanted)
    hits = ", ".join(str(int(seq)) for seq in seqs)
    table = "log" if filters.min_resonance is not None else "packets"  # the view only for marks
    session = dict(fetch(f"SELECT seq, session FROM {table} WHERE (seq IN ({listed}) {where}) "
                         f"OR seq IN ({hits})", params))
    return {seq: [n for n in (seq + d for d in CONTEXT_STEPS) if n in session and session[n] == session.get(seq)]
            for seq in seqs}


def with_context(fused: list, k: int, fetch: Fetch, filters: Filters, mark: str) -> list:
    """The fused top k (from rrf), its last CONTEXT_SHARE of places given to the turns beside
    the hits above them, in their order."""
    tail = int(k * CONTEXT_SHARE)
    if not tail:
        return fused[:k]
    head = fused[:k - tail]
    near = neighbours(fetch, [key for key, *_ in head], filters, mark)
    have = {key for key, *_ in head}
    extra = []
    for rank, (key, score, *_rest) in enumerate(head, 1):
        for n in near.get(key, []):
            if n not in have and len(extra) < tail:
                have.add(n)
                extra.append((n, score / 2, {"context": rank}, {}))
    rest = [f for f in fused[k - tail:] if f[0] not in have]
    return (head + extra + rest)[:k]
