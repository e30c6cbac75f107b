"""A user's own retrieval evaluation: labelled questions against the log, every search mode.

Each question names the packets that hold its evidence, by packet id or by a meta key the
packets carry (`--by dia_id`). A question is answered at k when any of its evidence packets is
in the top k (recall@k, the usual measure for conversational memory) and its reciprocal rank
is 1/rank of the first one found (MRR). Questions with no evidence (unanswerable by design)
are counted but not scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from soulctl import jsontext
from soulctl.errors import InvalidInput
from soulctl.log.ingest import decode_lines
from soulctl.log.packets import Filters
from soulctl.log.search import SEARCH_MODES, search_many
from soulctl.progress import progress_task


@dataclass
class Question:
    number: int  # line number in the file
    text: str
    evidence: list[str]
    category: str


@dataclass
class Figures:
    scored: int = 0
    found: int = 0
    reciprocal: float = 0.0
    categories: dict[str, list[float]] = field(default_factory=dict)  # category → [scored, found, rr]

    def add(self, category: str, rank: int | None) -> None:
        rr = 1.0 / rank if rank else 0.0
        self.scored += 1
        self.found += rank is not None
        self.reciprocal += rr
        cat = self.categories.setdefault(category, [0, 0, 0.0])
        cat[0] += 1
        cat[1] += rank is not None
        cat[2] += rr

    def as_dict(self) -> dict:
        return {"recall": _ratio(self.found, self.scored), "mrr": _ratio(self.reciprocal, self.scored),
                "categories": {name: {"questions": n, "recall": _ratio(f, n), "mrr": _ratio(rr, n)}
                               for name, (n, f, rr) in sorted(self.categories.items())}}


def _ratio(a: float, b: int) -> float | None:
    return round(a / b, 4) if b else None


def parse_questions(data: bytes) -> list[Question]:
    """JSON lines {"question", "evidence": [...], "category"?}; one-line errors by line number."""
    questions = []
    for number, line in decode_lines(data):
        if not line.strip():
            continue
        try:
            obj = jsontext.loads(line, f"line {number}")  # lone surrogates and NaN refused too
        except InvalidInput as exc:
            raise InvalidInput(exc.message,
                               hint='each line: {"question": "…", "evidence": ["<id>", …], "category": "…"}') from None
        if not isinstance(obj, dict) or not isinstance(obj.get("question"), str) or not obj["question"].strip():
            raise InvalidInput(f"line {number}: needs a non-empty string `question`")
        evidence = obj.get("evidence", [])
        if not isinstance(evidence, list) or not all(isinstance(e, (str, int)) for e in evidence):
            raise InvalidInput(f"line {number}: `evidence` must be a list of packet ids (or meta values)")
        category = obj.get("category", "all")
        if not isinstance(category, str) or not category:
            raise InvalidInput(f"line {number}: `category` must be a non-empty string")
        questions.append(Question(number, obj["question"], [str(e) for e in evidence], category))
    if not questions:
        raise InvalidInput("no questions in the file", hint="one JSON object per line")
    return questions


def evidence_ids(store, questions: list[Question], by: str | None) -> dict[int, set[str]]:
    """Each question's evidence as packet ids; any label naming no packet is an error."""
    if by is None:
        wanted = {e for q in questions for e in q.evidence}
        known = store.existing_ids(sorted(wanted)) if wanted else set()
        resolve = {e: {e} for e in known}
    else:
        resolve = {}
        for packet in store.list(Filters(), newest_first=False):
            value = (packet.meta or {}).get(by)
            for label in value if isinstance(value, list) else [value]:
                if label is not None:
                    resolve.setdefault(str(label), set()).add(packet.id)
    out = {}
    for q in questions:
        missing = [e for e in q.evidence if e not in resolve]
        if missing:
            what = f"packet with meta {by}={missing[0]!r}" if by else f"packet {missing[0]!r}"
            raise InvalidInput(f"line {q.number}: no {what} in the log",
                               hint="load the conversation first, or fix the label"
                                    + ("" if by else " (or use --by KEY for meta labels)"))
        out[q.number] = set().union(*(resolve[e] for e in q.evidence)) if q.evidence else set()
    return out


def evaluate(store, embedder, questions: list[Question], k: int, modes: Iterable[str] = SEARCH_MODES,
             by: str | None = None, filters: Filters | None = None, progress=None) -> dict:
    """recall@k and MRR per mode, overall and per category."""
    gold = evidence_ids(store, questions, by)
    scored = [q for q in questions if gold[q.number]]
    result = {"k": k, "questions": len(questions), "scored": len(scored),
              "unanswerable": len(questions) - len(scored), "modes": {}}
    by_number = {q.number: q for q in scored}
    for mode in modes:
        figures = Figures()
        queries = ({"query": q.text, "session": None, "query_id": q.number} for q in scored)
        with progress_task(progress, f"Searching ({mode})", len(scored)) as task:
            for query, hits in search_many(store, embedder, queries, k, mode, filters or Filters()):
                q = by_number[query["query_id"]]
                rank = next((i for i, r in enumerate(hits, 1) if r.packet.id in gold[q.number]), None)
                figures.add(q.category, rank)
                task.advance()
        result["modes"][mode] = figures.as_dict()
    return result
