"""Searching the log as commands and the Memory OS do: one query or many, hybrid (RRF of
the vector and keyword halves) or one half, whole packets back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from soulctl import jsontext
from soulctl.errors import InvalidInput
import soulctl.log.rank as rank
from soulctl.log.ingest import decode_lines
from soulctl.log.packets import Filters, Hit, Packet
from soulctl.log.store import Store
from soulctl.prose import norm

SEARCH_MODES = ("hybrid", "semantic", "keyword")
@dataclass
class SearchResult:
    hit: Hit
    packet: Packet

    def as_dict(self) -> dict:
        return {**self.packet.as_dict(), "score": round(self.hit.score, 6),
                "ranks": self.hit.ranks, "scores": {k: round(v, 6) for k, v in self.hit.scores.items()}}


def hybrid_depth(k: int) -> int:
    """How many of each half's ranking a hybrid search fuses: fusion needs more than k."""
    return max(k * 4, 40)


def search(store: Store, embedder, query: str, k: int = 10, mode: str = "hybrid",
           filters: Filters | None = None, query_vector: np.ndarray | None = None,
           plain: bool = False) -> list[SearchResult]:
    """The k best packets for `query`, re-ranked (log/rerank.py), and a packet that merely
    restates the query (the user asking it before) below every packet that does not: what
    answers a question comes before the question asked again. `plain`: the fusion's order."""
    if mode not in SEARCH_MODES:
        raise InvalidInput(f"unknown search mode {mode!r}", hint=f"use one of {', '.join(SEARCH_MODES)}")
    if not query.strip():
        raise InvalidInput("empty search query")
    if mode != "keyword" and query_vector is None:
        query_vector = embedder.encode_queries([query])[0]
    staged = mode == "hybrid" and not plain  # --semantic and --keyword: one half as written
    want = k + ANSWERS_SLACK if staged else k
    depth = want if mode != "hybrid" else hybrid_depth(k)  # the re-ranking orders the whole pool
    found = ranked(store, query_vector if mode != "keyword" else None, query if mode != "semantic" else None,
                   want, filters or Filters(), depth,
                   encode=embedder.encode_queries if mode == "hybrid" and embedder is not None else None, plain=plain)
    results = [SearchResult(hit, packet) for packet, hit in found]
    if staged:
        results.sort(key=lambda r: restates(query, r.packet))  # stable: the plain order otherwise
    return results[:k]


def ranked(store: Store, vector: np.ndarray | None, text: str | None, k: int, filters: Filters,
           depth: int | None = None, encode=None, plain: bool = False) -> list[tuple[Packet, Hit]]:
    """The k best packets by `vector` (semantic), `text` (keywords) or both (hybrid), top-down:
    the backend's candidates, read consistently, ranked by the one ranking every backend shares
    (log/rank.py), the winners fetched — one pass, no return trips."""
    with store.candidates() as candidates:
        if candidates is None:
            return []
        return rank.search(candidates, vector, text, k, filters, max(depth or k, k), encode, plain)


ANSWERS_SLACK = 10  # restatements pushed down make room for this many more
_STOP = frozenset("a an the i me my you your we our is are was were be been do did does what when where "
                  "who whom which why how about of in on at to for with and or that this it did say said "
                  "tell told remember any some have has had".split())


def restates(query: str, packet: Packet) -> bool:
    """A user's question that asks what the query asks: the same words, or all of the query's
    content words. (A statement in the query's words is what a search for them wants.)"""
    if packet.role != "user" or "?" not in packet.prose:
        return False
    asked, said = norm(query), norm(packet.prose)
    want = set(asked.split()) - _STOP
    return asked == said or (bool(want) and want <= set(said.split()))


def search_many(store: Store, embedder, queries: Iterable[dict], k: int, mode: str,
                filters: Filters, plain: bool = False) -> Iterator[tuple[dict, list[SearchResult]]]:
    """Answer many queries in one process, embedding them in batches."""
    batch: list[dict] = []

    def flush():
        vectors = (embedder.encode_queries([q["query"] for q in batch]) if mode != "keyword"
                   else [None] * len(batch))
        for q, vec in zip(batch, vectors):
            f = Filters(**{**filters.__dict__, **({"session": q["session"]} if q.get("session") else {})})
            yield q, search(store, embedder, q["query"], k, mode, f, query_vector=vec, plain=plain)

    for q in queries:
        batch.append(q)
        if len(batch) >= 64:
            yield from flush()
            batch = []
    if batch:
        yield from flush()


def parse_queries(data: bytes) -> Iterator[dict]:
    """Queries from stdin: plain lines, or JSON lines {"query", "session", "id"}."""
    for number, line in decode_lines(data):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            obj = jsontext.loads(line, f"line {number}")
            if not isinstance(obj, dict) or not isinstance(obj.get("query"), str):
                raise InvalidInput(f"line {number}: a JSON query needs a string `query`")
            yield {"query": obj["query"], "session": obj.get("session"),
                   "query_id": obj.get("id", number)}
        else:
            yield {"query": line, "session": None, "query_id": number}
