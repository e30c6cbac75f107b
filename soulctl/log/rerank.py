"""Hybrid search's last stage, one code for every backend: every candidate the rankings found,
scored by what it says beside the question. The rankings find the evidence (on LoCoMo's dev
half, nine questions in ten have it within their first 60 places); this stage puts it into
the first places.

Each candidate is described by a few numbers — how near it is in meaning to the question as
asked and without the speaker's name; how near the turns before
and after it are; where each ranking placed it; which of the question's words it holds,
weighted by how rare each is among the candidates (a crude BM25 over the pool), and which its
previous turn holds; whether its speaker is the one the question names; whether it mentions
the question's other names, a date cue for a "when" question, the question's numbers; whether
it is a greeting or a question itself — and scored by gradient-boosted trees over them
(rerank.json, fitted on the LoCoMo dev half by tests/bench/bench_locomo.py --fit --write,
which reports them leave-one-conversation-out; evaluated here in numpy, no learning library
imported at search time).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from soulctl.log.store import Turn
from soulctl.search import dates

FEATURES = ("sim", "sim_asked", "sim_before", "sim_after", "rank_semantic", "rank_keyword",
            "rank_dated", "rank_speaker", "covered", "covered_rare", "bm25", "covered_before", "bigrams",
            "length", "speaker_named", "speaker_other", "names", "date_cue", "asks", "in_span", "greeting",
            "numbers")
RRF_K = 60
POOL = 50  # the fusion's first places re-ranked: on LoCoMo's dev half 92% of questions have evidence there
_STOP = frozenset("a an the i me my you your we our us is are was were be been do did does what when where who "
                  "whom which why how about of in on at to for with and or that this it its say said tell told "
                  "remember any some have has had they them their he she his her him".split())
_WHEN = re.compile(r"\s*(when|how long|what year|what month|what date|what day|which year|which month)\b", re.I)
_DATE_CUE = re.compile(r"\b(yesterday|today|tomorrow|tonight|last|next|ago|week|weekend|month|year|years|since|"
                       r"recently|soon|\d{4}|" + "|".join(dates.MONTHS + dates.WEEKDAYS) + r")\b", re.I)
_GREETING = re.compile(r"^(hey|hi|hello|good to see|long time|great to hear|nice to see|good morning|"
                       r"good evening|wow)\b", re.I)


# The soul's own replies are scored on what they say, never on the turns beside them. The trees
# learned from two people talking, where the turn after a matching question is usually its
# answer; the soul's reply after a user's question is as often "I do not know." or "Well done."
# (no LoCoMo turn is the soul's, so this is a rule, not a fit).
OWN_WORDS = ("soul",)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def said(turn: Turn) -> str:
    """What a turn says, less a "<speaker>: " prefix."""
    if turn.speaker and turn.prose.startswith(f"{turn.speaker}: "):
        return turn.prose[len(turn.speaker) + 2:]
    return turn.prose


@dataclass
class Question:
    """A question as the stage reads it: as asked, without the names the ranking took out."""
    asked: str
    text: str  # without the speakers' names
    vector: np.ndarray  # of `text`
    asked_vector: np.ndarray
    names: list[str]  # the speakers it names
    others: list[str]  # the other capitalised words (places, pets, titles)
    span: dates.Span | None = None
    terms: list[str] = field(init=False)

    def __post_init__(self):
        self.terms = [w for w in words(self.text) if w not in _STOP]


def features(q: Question, rankings: dict[str, list[tuple[int, float]]], candidates: list[int],
             turns: dict[int, Turn]) -> tuple[list[int], np.ndarray]:
    """(the candidates' seqs, one row of FEATURES each). `turns` holds the candidates and the
    turns beside them (Candidates.turns)."""
    ranks = {name: {seq: i for i, (seq, _) in enumerate(r, 1)} for name, r in rankings.items()}
    pool = [seq for seq in candidates if seq in turns]
    tokens = {seq: words(said(t)) for seq, t in turns.items()}
    terms = set(q.terms)
    df = Counter(w for seq in pool for w in set(tokens[seq]) & terms)
    n = max(1, len(pool))
    idf = {w: math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5)) for w in terms}
    total_idf = sum(idf.values()) or 1.0
    bigrams = set(zip(q.terms, q.terms[1:]))
    numbers = {w for w in q.terms if w.isdigit()}
    when = bool(_WHEN.match(q.asked))
    others = [o.lower() for o in q.others]
    mean_len = np.mean([len(tokens[s]) for s in pool]) if pool else 1.0
    rows = []
    for seq in pool:
        turn, t = turns[seq], tokens[seq]
        v = turn.vector
        before, after = (n if n in turns and turns[n].session == turn.session else None for n in (seq - 1, seq + 1))
        if turn.packet.role in OWN_WORDS:  # scored on what it says alone
            before = after = None
        tf = Counter(t)
        held = terms & tf.keys()
        text = said(turn)
        speaker = turn.speaker
        rows.append([
            _dot(q.vector, v), _dot(q.asked_vector, v),
            _dot(q.vector, turns[before].vector) if before else NONE,
            _dot(q.vector, turns[after].vector) if after else NONE,
            *(1.0 / (RRF_K + ranks[name][seq]) if seq in ranks.get(name, {}) else 0.0
              for name in ("semantic", "keyword", "dated", "speaker")),
            len(held) / max(1, len(terms)), sum(idf[w] for w in held) / total_idf,
            sum(idf[w] * tf[w] * 2.2 / (tf[w] + 1.2 * (0.25 + 0.75 * len(t) / max(1.0, mean_len))) for w in held),
            (sum(idf[w] for w in terms & set(tokens[before])) / total_idf) if before else NONE,
            len(bigrams & set(zip(t, t[1:]))), math.log1p(len(t)),
            1.0 if speaker and speaker in q.names else 0.0,
            1.0 if q.names and speaker and speaker not in q.names else 0.0,
            sum(1 for o in others if o in text.lower()),
            1.0 if when and _DATE_CUE.search(text) else 0.0,
            1.0 if text.rstrip().endswith("?") else 0.0,
            _in_span(q, turn, when),
            1.0 if _GREETING.match(text) else 0.0,
            1.0 if numbers & tf.keys() else 0.0,
        ])
    return pool, np.asarray(rows, np.float64).reshape(len(rows), len(FEATURES))


def _in_span(q: Question, turn: Turn, when: bool) -> float:
    """2: the turn speaks of a day in the question's span, 1: it was said in it, else 0. Only a
    question asking when tells the two apart: "what was the weather like in June?" is answered
    by a turn said in June, not by one that names a June day."""
    if q.span is None:
        return 0.0
    tier = dates.in_span(q.span, turn.prose, turn.day)
    return float(tier if when else min(tier, 1))


NONE = float("nan")  # no turn before or after: missing to the trees, not "unlike the question"


def _dot(a, b) -> float:
    return float(np.dot(a, b))


def scores(x: np.ndarray, model: dict | None = None) -> np.ndarray:
    """The model's score of each row (higher: more likely the evidence): gradient-boosted
    trees, summed on the baseline, every tree at once — a row goes left while its feature is at
    most the node's threshold, until a leaf. Rows are FEATURES, then each GAPPED feature less
    the pool's best."""
    m = model or trees()
    if not len(x):
        return np.zeros(0)
    x = widened(x)
    feature, threshold, left, right, leaf, value, missing = (
        m[key] for key in ("feature", "threshold", "left", "right", "leaf", "value", "missing_left"))
    tree = np.arange(len(feature))[:, None]
    node = np.zeros((len(feature), len(x)), np.int64)
    for _ in range(m["depth"]):
        seen = x[np.arange(len(x))[None, :], feature[tree, node]]
        with np.errstate(invalid="ignore"):
            goes_left = np.where(np.isnan(seen), missing[tree, node], seen <= threshold[tree, node])
        node = np.where(leaf[tree, node], node, np.where(goes_left, left[tree, node], right[tree, node]))
    return m["baseline"] + value[tree, node].sum(0)


def widened(x: np.ndarray) -> np.ndarray:
    """FEATURES, then each GAPPED one less the pool's best (a missing value stays missing)."""
    head = x[:, :GAPPED]
    best = np.where(np.isnan(head), -np.inf, head).max(0, keepdims=True)
    return np.hstack([x, head - best])


GAPPED = 11  # the similarities, ranks and word matches: also as the gap to the pool's best
WIDTH = len(FEATURES) + GAPPED


@cache
def trees() -> dict:
    """rerank.json as arrays."""
    m = json.loads(Path(__file__).with_name("rerank.json").read_text())
    return as_arrays(m)


def as_arrays(m: dict) -> dict:
    """The trees as one padded array per field (tree × node), and their depth."""
    if m["features"] != list(FEATURES) + [f"{f}_gap" for f in FEATURES[:GAPPED]]:
        raise ValueError("rerank.json was fitted on other features: refit (tests/bench/bench_locomo.py --fit --write)")
    width = max(len(t["feature"]) for t in m["trees"])
    out = {}
    for key, dtype, pad in (("feature", np.int64, 0), ("threshold", np.float64, 0.0), ("left", np.int64, 0),
                            ("right", np.int64, 0), ("leaf", bool, True), ("value", np.float64, 0.0),
                            ("missing_left", bool, True)):
        out[key] = np.array([t[key] + [pad] * (width - len(t[key])) for t in m["trees"]], dtype)
    return {**out, "baseline": float(m["baseline"]), "depth": _depth(m["trees"])}


def _depth(trees: list[dict]) -> int:
    def down(t, node):
        return 0 if t["leaf"][node] else 1 + max(down(t, t["left"][node]), down(t, t["right"][node]))
    return max(down(t, 0) for t in trees)
