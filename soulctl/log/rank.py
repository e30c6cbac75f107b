"""Hybrid search's ranking, one code for every backend. A backend supplies candidates — its
vector and keyword rankings with every filter pushed in, the turns beside a hit, packets by seq,
the log's first and last dates, the speakers it holds — and everything above them is here, so a
log ranks the same on DuckDB and on PostgreSQL:

1. the two halves, fused by reciprocal rank;
2. dates: a question that names a day or a month ("on 14 June", "in May") adds a third ranking,
   the packets about that day (a relative date in what was said resolved against when it was
   said: "yesterday", "last Saturday", "on the 14th"), else written on it, by meaning;
3. speakers: a question that names someone who speaks in the log ("what does Tomas paint?")
   adds that person's turns, by meaning;
4. context: the last places go to the turns beside the best hits (log/context.py).
"""

from __future__ import annotations

import dataclasses
import re
import numpy as np

import soulctl.log.rerank as rerank
from soulctl.log.context import with_context
from soulctl.log.packets import Filters, Hit, Packet
from soulctl.log.store import Candidates
from soulctl.search import dates
from soulctl.search.fusion import rrf

# Each ranking's weight in the fusion. Chosen on tests/data/longset (bench_recall.py): the
# dated and speaker rankings are narrower than the halves, so their first places count double.
WEIGHTS = {"semantic": 1.0, "keyword": 1.0, "dated": 2.0, "speaker": 1.0}
DATED_DEPTH = 3  # × the search's depth, before the dates are checked
MAX_NAMES = 3
_NOT_NAMES = frozenset(w.capitalize() for w in (
    *dates.MONTHS, *dates.WEEKDAYS, "i", "what", "which", "who", "whom", "whose", "when", "where", "why", "how",
    "did", "does", "do", "is", "are", "was", "were", "the", "a", "an", "and", "or", "my", "our", "we", "you",
    "tell", "can", "could", "would", "should", "has", "have", "had", "in", "on", "at", "of", "for", "to"))


def capitalised(text: str) -> list[str]:
    """The words of a question that may be names: capitalised, not a question word, month or day."""
    out = []
    for word in re.findall(r"\b[A-Z][\w'’-]+", text):
        name = word.removesuffix("'s").removesuffix("’s")
        if name not in _NOT_NAMES and name not in out:
            out.append(name)
    return out


def named(text: str, speakers: set[str]) -> list[str]:
    """The log's speakers a question names, by their capitalised names."""
    return [name for name in capitalised(text) if name in speakers][:MAX_NAMES]


def dated(c: Candidates, span: dates.Span, vector, depth: int, filters: Filters) -> list[tuple[int, float]]:
    """The packets about the span's days (or, naming no day, written on them), by meaning."""
    bounds = c.bounds()
    if bounds is None:
        return []
    pool: dict[int, float] = {}
    for lo, hi in dates.windows(span, *bounds):
        since = max(lo, filters.since) if filters.since else lo
        until = min(hi, filters.until) if filters.until else hi
        if since > until:
            continue
        window = dataclasses.replace(filters, since=since, until=until)
        for seq, score in c.rankings(vector, None, depth * DATED_DEPTH, window).get("semantic", []):
            pool[seq] = max(score, pool.get(seq, -1.0))
    packets = c.by_seq(list(pool))
    tiers = {seq: dates.in_span(span, p.prose, p.ts.date()) for seq, p in packets.items()}
    kept = [(seq, pool[seq]) for seq in packets if tiers[seq]]
    kept.sort(key=lambda pair: (-tiers[pair[0]], -pair[1]))
    return kept[:depth]


def spoken(c: Candidates, names: list[str], vector, depth: int, filters: Filters) -> list[tuple[int, float]]:
    """The named speakers' packets, by meaning."""
    pool: dict[int, float] = {}
    for name in names:
        for seq, score in c.rankings(vector, None, depth, dataclasses.replace(filters, speaker=name)).get("semantic", []):
            pool[seq] = max(score, pool.get(seq, -1.0))
    return sorted(pool.items(), key=lambda pair: -pair[1])[:depth]


_STOP = frozenset("a an the i me my you your we our us is are was were be been do did does what when where who "
                  "whom which why how about of in on at to for with and or that this it its say said tell told "
                  "remember any some have has had they them their he she his her him".split())


def content_words(text: str) -> set[str]:
    """A text's content words, stemmed crudely (cooked, cooking → cook; adopted → adopt)."""
    return {re.sub(r"(ing|ed|es|s)$", "", w) if len(w) > 4 else w
            for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP and len(w) > 1}


def question_words(text: str) -> str:
    """A question as the keyword half should take it: its words less the question's own
    ("where did … us over"), so that both backends' keyword engines see the same words (Postgres
    drops English stopwords, tantivy keeps them). A query with keyword syntax — "a phrase",
    -not, or — is left as written."""
    if re.search(r"[\"()]|(^|\s)-\w|\bOR\b|:", text):
        return text
    kept = [w for w in re.findall(r"[\w'’-]+", text) if w.lower() not in _STOP]
    return " ".join(kept) or text


def keyword_weight(c: Candidates, text: str, ranking: list[tuple[int, float]]) -> float:
    """How much the keyword half's word matches say: the share of the question's content words
    its best hits hold. A question asked in other words than the evidence (a paraphrase) finds
    only stray words, and its keyword ranking is then mostly noise."""
    asked = content_words(text)
    if not asked or not ranking:
        return KEYWORD_FLOOR
    packets = c.by_seq([seq for seq, _ in ranking[:KEYWORD_LOOK]])
    best = max((len(asked & content_words(p.prose)) / len(asked) for p in packets.values()), default=0.0)
    return max(KEYWORD_FLOOR, min(1.0, best / KEYWORD_FULL))


KEYWORD_LOOK = 3  # the keyword hits whose words are counted
KEYWORD_FULL = 0.5  # this share of the question's words found: full weight
KEYWORD_FLOOR = 0.05


def without(text: str, names: list[str]) -> str:
    """The question with the names taken out: the speaker filter holds them, and in the words
    a name outweighs what is asked ("What did Kenji cook?" finds "Hi, it's Kenji.")."""
    for name in names:
        text = re.sub(rf"\b{re.escape(name)}(?:['’]s)?\b", "", text)
    return " ".join(text.split())


def search(c: Candidates, vector: np.ndarray | None, text: str | None, k: int, filters: Filters,
           depth: int, encode=None, plain: bool = False) -> list[tuple[Packet, Hit]]:
    """The k best packets: one half alone, or the hybrid ranking above — re-ranked
    (log/rerank.py) unless `plain`, when the fusion and its context places are the order, as
    they are when the rankings find fewer candidates than the re-ranking was fitted on (a small
    log, a narrow filter: the trees learned from pools of rerank.POOL).
    `encode` (the log's embedder) lets the ranking embed the question as it asks it, without a
    speaker's name."""
    if vector is None or text is None:
        rankings = c.rankings(vector, text, depth, filters)
        if not rankings:
            return []
        name, ranking = next(iter(rankings.items()))
        return _fetched(c, [(key, score, {name: i}, {name: score}) for i, (key, score) in enumerate(ranking[:k], 1)])
    question, rankings = gathered(c, vector, text, depth, filters, encode, plain)
    if not rankings:
        return []
    if question is None or len({seq for r in rankings.values() for seq, _ in r}) < rerank.POOL:
        weights = {**WEIGHTS, "keyword": WEIGHTS["keyword"] * keyword_weight(c, text, rankings["keyword"])}
        return _fetched(c, with_context(rrf(rankings, k * 2, weights=weights), k,
                                        lambda seqs: c.neighbours(seqs, filters)))
    seqs, x, packets = pool(c, question, rankings)
    score = rerank.scores(x)
    ranks = {name: {seq: i for i, (seq, _) in enumerate(r, 1)} for name, r in rankings.items()}
    values = {name: dict(r) for name, r in rankings.items()}
    return [(packets[seqs[i]], Hit(packets[seqs[i]].id, float(score[i]),
                                   {n: ranks[n][seqs[i]] for n in ranks if seqs[i] in ranks[n]},
                                   {n: values[n][seqs[i]] for n in values if seqs[i] in values[n]}))
            for i in np.argsort(-score, kind="stable")[:k]]


def gathered(c: Candidates, vector: np.ndarray, text: str, depth: int, filters: Filters, encode=None,
             plain: bool = False) -> tuple[rerank.Question | None, dict[str, list[tuple[int, float]]]]:
    """A hybrid search's rankings — the halves, and the dated and speaker rankings when the
    question names a day or a speaker — and the question as the re-ranking reads it (None when
    `plain` or with no embedder to hand)."""
    asked, asked_vector = text, vector
    maybe = capitalised(text) if filters.speaker is None else []
    names = named(text, c.speakers()) if maybe else []  # who speaks is asked only when a name may be
    if names and (rest := without(text, names)):
        vector = encode([rest])[0] if encode is not None else vector
        text = rest
    rankings = c.rankings(vector, question_words(text), depth, filters)
    if not rankings:
        return None, {}
    span = dates.query_span(text)
    if span is not None and (found := dated(c, span, vector, depth, filters)):
        rankings["dated"] = found
    if names and (found := spoken(c, names, vector, depth, filters)):
        rankings["speaker"] = found
    if plain or encode is None:
        return None, rankings
    return rerank.Question(asked, text, vector, asked_vector, names,
                           [w for w in maybe if w not in names], span), rankings


def pool(c: Candidates, question: rerank.Question,
         rankings: dict) -> tuple[list[int], np.ndarray, dict[int, Packet]]:
    """The fusion's first rerank.POOL candidates with their features (log/rerank.py): (seqs,
    rows, the candidates' and their neighbours' packets)."""
    candidates = [key for key, *_ in rrf(rankings, rerank.POOL, weights=WEIGHTS)]
    turns = c.turns(candidates)
    seqs, x = rerank.features(question, rankings, candidates, turns)
    return seqs, x, {seq: t.packet for seq, t in turns.items()}


def _fetched(c: Candidates, fused: list) -> list[tuple[Packet, Hit]]:
    if not fused:
        return []
    packets = c.by_seq([key for key, *_ in fused])
    return [(packets[key], Hit(packets[key].id, float(score), ranks, scores))
            for key, score, ranks, scores in fused if key in packets]
