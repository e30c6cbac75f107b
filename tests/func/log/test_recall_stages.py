"""Retrieval that reads conversations, on both stores: a question naming a day finds the turn
about that day, a question naming a speaker prefers that person's turns, `--speaker` filters;
and the long-conversation dev set is what its builder writes."""

from __future__ import annotations

import importlib
import json
import sys

import pytest
from conftest import BACKENDS, REPO, copy_home, soulctl, use_backend

LONGSET = REPO / "tests" / "data" / "longset"

# Two people and their soul: two runs said the same way on different days, two cooks.
TURNS = [
    ("2026-05-04T18:00:00Z", "Ines", "Yesterday I ran 12 km along the river path. My legs are jelly."),
    ("2026-05-04T18:01:00Z", None, "That's a long way!"),
    ("2026-05-20T18:00:00Z", "Tomas", "Hi, it's Tomas."),
    ("2026-05-20T18:01:00Z", "Tomas", "I cooked a pumpkin soup with chilli oil tonight. Nailed it."),
    ("2026-05-20T18:02:00Z", "Ines", "I cooked a lentil dal with too much ginger. Not my best."),
    ("2026-06-10T18:00:00Z", "Ines", "Two days ago I ran 8 km along the river path. My legs are jelly."),
    ("2026-06-10T18:01:00Z", None, "Well done."),
    ("2026-06-10T18:02:00Z", "Tomas", "It rained all afternoon, so I stayed in with a book."),
]


@pytest.fixture(scope="module", params=BACKENDS)
def talk_home(gen0_home, tmp_path_factory, request):
    root = use_backend(copy_home(gen0_home, tmp_path_factory.mktemp("stages") / "home"), request.param)
    rows = [{"prose": prose, "role": "user" if who else "soul", "session": ts[:10], "ts": ts,
             **({"meta": {"speaker": who}} if who else {})} for ts, who, prose in TURNS]
    added = soulctl("log", "add", "--jsonl", "--home", root, input="".join(json.dumps(r) + "\n" for r in rows))
    assert added.code == 0, added
    return root


def top(home, query, *extra, k=3):
    result = soulctl("log", "search", query, "-k", str(k), "--json", *extra, "--home", home)
    assert result.code == 0, result
    return result.json_lines()


def test_a_temporal_question_finds_the_dated_turn(talk_home):
    first = top(talk_home, "How far did Ines run on 3 May?")[0]
    assert first["prose"].startswith("Yesterday I ran 12 km")  # said on 4 May about the 3rd
    assert "dated" in first["ranks"]
    second = top(talk_home, "How far did Ines run on June 8th?")[0]
    assert second["prose"].startswith("Two days ago I ran 8 km")
    june = top(talk_home, "What was the weather like in June?", k=2)
    assert any(h["prose"].startswith("It rained") for h in june) and all("dated" in h["ranks"] for h in june)


def test_a_named_speaker_question_prefers_that_speakers_turns(talk_home):
    for name, dish in (("Tomas", "pumpkin soup"), ("Ines", "lentil dal")):
        hits = top(talk_home, f"What did {name} cook?")
        assert dish in hits[0]["prose"], (name, hits)
        assert hits[0]["meta"]["speaker"] == name and "speaker" in hits[0]["ranks"]


def test_speaker_filters_every_mode_and_the_listing(talk_home):
    for mode in ([], ["--semantic"], ["--keyword"]):
        hits = top(talk_home, "cooked tonight", "--speaker", "Ines", *mode, k=10)
        assert hits and {h["meta"]["speaker"] for h in hits} == {"Ines"}, mode
    listed = soulctl("log", "ls", "--speaker", "Tomas", "--json", "--home", talk_home).json_lines()
    assert sorted(r["prose"][:12] for r in listed) == ["Hi, it's Tom", "I cooked a p", "It rained al"]
    assert top(talk_home, "cooked", "--speaker", "Nobody") == []


def test_the_long_dev_set_is_what_its_builder_writes():
    sys.path.insert(0, str(LONGSET))
    try:
        build = importlib.import_module("build")
        packets, questions = build.build()
    finally:
        sys.path.remove(str(LONGSET))
        sys.modules.pop("build", None)
        sys.modules.pop("life", None)
    assert [json.loads(line) for line in (LONGSET / "conversations.jsonl").open()] == packets
    assert [json.loads(line) for line in (LONGSET / "questions.jsonl").open()] == questions
    convs = {p["meta"]["conv"] for p in packets}
    assert len(convs) >= 8 and len(questions) >= 400
    for conv in convs:
        mine = [p for p in packets if p["meta"]["conv"] == conv]
        assert len(mine) >= 300 and len({p["session"] for p in mine}) >= 10
    assert {q["category"] for q in questions} == {"single-hop", "multi-hop", "temporal", "paraphrase", "adversarial"}
    dia = {p["meta"]["dia_id"] for p in packets}
    assert all(set(q["evidence"]) <= dia for q in questions)
    assert all(not q["evidence"] for q in questions if q["category"] == "adversarial")
