"""`soulctl log eval`: recall@k and MRR of labelled questions, every search mode, and one-line
refusals of bad question files."""

from __future__ import annotations

import json

from tests.conftest import refused, soulctl

TURNS = [
    ("the heron waits by the marsh at dawn", "d1"),
    ("my sister moved to lisbon for a design job", "d2"),
    ("we bought a red bicycle for the commute", "d3"),
    ("the boiler is leaking again", "d4"),
    ("I made lentil soup for the week", "d5"),
]


def load(home) -> list[str]:
    lines = "".join(json.dumps({"prose": p, "meta": {"dia_id": d}}) + "\n" for p, d in TURNS)
    added = soulctl("--home", home, "--json", "log", "add", "--jsonl", input=lines)
    assert added.code == 0, added
    return [json.loads(line)["id"] for line in added.stdout.splitlines()]


def write(tmp_path, rows, name="q.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_eval_gives_known_recall_and_mrr(home, tmp_path):
    ids = load(home)
    questions = write(tmp_path, [
        {"question": "heron marsh", "evidence": ["d1"], "category": "birds"},
        {"question": "lisbon", "evidence": ["d2", "d5"], "category": "family"},
        {"question": "quantum chromodynamics", "evidence": ["d3"], "category": "family"},
        {"question": "what colour is the car?", "evidence": [], "category": "unanswerable"},
    ])
    result = soulctl("--home", home, "--json", "log", "eval", questions, "-k", "1", "--by", "dia_id",
                     "--mode", "keyword")
    assert result.code == 0, result
    r = json.loads(result.stdout)
    assert (r["k"], r["questions"], r["scored"], r["unanswerable"]) == (1, 4, 3, 1)
    keyword = r["modes"]["keyword"]
    assert keyword["recall"] == round(2 / 3, 4) and keyword["mrr"] == round(2 / 3, 4)
    assert keyword["categories"]["birds"] == {"questions": 1, "recall": 1.0, "mrr": 1.0}
    assert keyword["categories"]["family"] == {"questions": 2, "recall": 0.5, "mrr": 0.5}

    # by packet id, every mode side by side; the table names them all
    by_id = write(tmp_path, [{"question": "the heron waits by the marsh", "evidence": [ids[0]]}], "ids.jsonl")
    result = soulctl("--home", home, "--json", "log", "eval", by_id, "-k", "3")
    r = json.loads(result.stdout)
    assert set(r["modes"]) == {"hybrid", "semantic", "keyword"}
    assert all(m["recall"] == 1.0 and m["mrr"] == 1.0 for m in r["modes"].values()), r
    table = soulctl("--home", home, "log", "eval", by_id, "-k", "3")
    assert table.code == 0 and "recall@3" in table.stdout and "semantic" in table.stdout, table


def test_bad_question_files_are_refused_in_one_line(home, tmp_path):
    ids = load(home)
    cases = [
        ([{"question": "heron", "evidence": [ids[0]]}, "{not json"], 5, "line 2 is not valid JSON"),
        ([{"evidence": [ids[0]]}], 5, "line 1: needs a non-empty string `question`"),
        ([{"question": "heron", "evidence": ids[0]}], 5, "line 1: `evidence` must be a list"),
        ([{"question": "heron", "evidence": ["0190aaaa-0000-7000-8000-000000000000"]}], 5, "line 1: no packet"),
        ([{"question": "heron", "evidence": ["d9"]}], 5, "no packet with meta dia_id='d9'"),
        ([""], 5, "no questions in the file"),
    ]
    for number, (rows, code, words) in enumerate(cases):
        path = write(tmp_path, rows, f"bad{number}.jsonl")
        args = ["--by", "dia_id"] if "dia_id" in words else []
        refused(soulctl("--home", home, "log", "eval", path, *args), code, words)
    refused(soulctl("--home", home, "log", "eval", tmp_path / "missing.jsonl"), 3, "no such file")
    refused(soulctl("--home", home, "log", "eval", tmp_path / "bad0.jsonl", "--mode", "fuzzy"), 5,
            "unknown search mode")
