"""The shared ranking's stages on a small fixture (soulctl/log/rank.py): a backend's candidates
stood in by a dict of packets and exact rankings over them."""

import datetime as dt

import numpy as np

from soulctl.log import rank
from soulctl.log.packets import Filters, Packet
from soulctl.log.store import Turn
from soulctl.search.fusion import rrf


class Fixture:
    """Candidates over a few packets: vectors by hand, keyword = shared words."""

    def __init__(self, rows):
        self.packets = {}
        self.vectors = {}
        for seq, (day, speaker, prose, vector) in enumerate(rows, 1):
            ts = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(18), dt.timezone.utc)
            self.packets[seq] = Packet(id=f"p{seq}", seq=seq, ts=ts, session=day, role="user", prose=prose,
                                       embed_model="x", meta={"speaker": speaker})
            self.vectors[seq] = np.asarray(vector, np.float32)

    def _passes(self, p, f: Filters) -> bool:
        return ((f.speaker is None or p.meta["speaker"] == f.speaker)
                and (f.since is None or p.ts >= f.since) and (f.until is None or p.ts <= f.until))

    def rankings(self, vector, text, depth, filters):
        out = {}
        live = [s for s, p in self.packets.items() if self._passes(p, filters)]
        if vector is not None:
            out["semantic"] = sorted(((s, float(self.vectors[s] @ vector)) for s in live), key=lambda x: -x[1])[:depth]
        if text is not None:
            asked = rank.content_words(text)
            hits = [(s, float(len(asked & rank.content_words(self.packets[s].prose)))) for s in live]
            out["keyword"] = sorted((h for h in hits if h[1] > 0), key=lambda x: -x[1])[:depth]
        return out

    def neighbours(self, seqs, filters):
        return {}

    def by_seq(self, seqs):
        return {s: self.packets[s] for s in seqs if s in self.packets}

    def turns(self, seqs):
        wanted = {n for s in seqs for n in (s - 1, s, s + 1)}
        return {s: Turn(self.packets[s], self.vectors[s]) for s in wanted if s in self.packets}

    def bounds(self):
        days = [p.ts.date() for p in self.packets.values()]
        return min(days), max(days)

    def speakers(self):
        return {p.meta["speaker"] for p in self.packets.values()}


RUNS = Fixture([
    ("2026-05-04", "Ines", "Yesterday I ran 12 km along the river path.", [1, 0]),
    ("2026-06-10", "Ines", "Yesterday I ran 8 km along the river path.", [1, 0]),
    ("2026-06-11", "Tomas", "I cooked a pumpkin soup tonight.", [0, 1]),
    ("2026-06-12", "Ines", "I cooked a lentil dal tonight.", [0, 1]),
    ("2026-06-13", "Tomas", "Hi, it's Tomas.", [0.6, 0.8]),
])


def test_a_temporal_question_finds_the_dated_turn():
    for question, want in (("How far did I run on 3 May?", "p1"), ("How far did I run on June 9th?", "p2")):
        hits = rank.search(RUNS, np.asarray([1, 0], np.float32), question, 2, Filters(), 10)
        assert hits[0][0].id == want, question
        assert "dated" in hits[0][1].ranks


def test_a_named_speaker_question_prefers_that_speakers_turns():
    encode = lambda texts: np.asarray([[0, 1]], np.float32)  # noqa: E731 — "What did cook?" is about cooking
    hits = rank.search(RUNS, np.asarray([0.6, 0.8], np.float32), "What did Tomas cook?", 3, Filters(), 10, encode)
    assert hits[0][0].id == "p3"
    assert hits[0][1].ranks.get("speaker") == 1
    assert [h[0].id for h in hits].index("p3") < [h[0].id for h in hits].index("p4")


def test_names_are_the_logs_speakers_only():
    assert rank.named("What did Tomas and Ines cook in May?", {"Ines", "Tomas"}) == ["Tomas", "Ines"]
    assert rank.named("What did Tomas's sister say?", {"Tomas"}) == ["Tomas"]
    assert rank.named("What did Paulo cook?", {"Ines"}) == []
    assert rank.without("What did Tomas's sister say?", ["Tomas"]) == "What did sister say?"


def test_the_keyword_half_counts_as_much_as_its_words_match():
    full = rank.keyword_weight(RUNS, "lentil dal", [(4, 2.0)])
    stray = rank.keyword_weight(RUNS, "which evening meal went badly wrong lentil", [(4, 1.0)])
    assert full == 1.0
    assert rank.KEYWORD_FLOOR <= stray < 0.5
    assert rank.keyword_weight(RUNS, "anything", []) == rank.KEYWORD_FLOOR


def test_weights_scale_a_rankings_share():
    plain = rrf({"a": [(1, 1.0), (2, 0.5)], "b": [(2, 1.0), (1, 0.5)]})
    assert plain[0][1] == plain[1][1]  # a tie, broken by the best rank
    tilted = rrf({"a": [(1, 1.0), (2, 0.5)], "b": [(2, 1.0), (1, 0.5)]}, weights={"b": 2.0})
    assert tilted[0][0] == 2


def test_the_keyword_half_gets_the_questions_words_or_the_users_syntax():
    assert rank.question_words("Where did a gale nearly knock us over?") == "gale nearly knock over"
    assert rank.question_words('"old harbour" -boat') == '"old harbour" -boat'  # keyword syntax kept
    assert rank.question_words("what did we do") == "what did we do"  # nothing left: as asked
