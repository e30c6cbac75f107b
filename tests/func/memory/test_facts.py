"""What the user states, the soul keeps, in the user's words (soulctl/memory/facts.py), on a real
home: its store, its embedder, its serving model's token count."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from soulctl.log import NewPacket

STATED = Path(__file__).parents[2] / "data" / "stated.yaml"


@pytest.fixture
def soul(home):
    from soulctl.home import Home
    from soulctl.soul import Soul

    soul = Soul(Home(home))
    try:
        yield soul
    finally:
        soul.close()


def said(soul, text: str, session: str = "day") -> str:
    """A user's turn, logged as chat logs it; its packet id."""
    packet = NewPacket(prose=text, role="user", session=session)
    return soul.store.add([packet], soul.embedder.encode([text]), soul.embedder.model_id)[0].id


def keep(soul, text: str, session: str = "day", limit: int | None = None):
    from soulctl.memory.facts import capture

    packet = said(soul, text, session)
    engine = soul.engine("soul")
    return packet, capture(soul, text, packet, limit=limit or soul.config.memory.notebook_tokens, counter=engine)


def notebook(soul) -> str:
    from soulctl.memory import notebook as nb

    return nb.current(soul, "notebook")["text"]


def test_stated_facts_are_kept_verbatim_and_cited_and_talk_leaves_the_notebook_alone(soul):
    cases = yaml.safe_load(STATED.read_text())
    facts, talk = cases["facts"], cases["talk"]
    assert len(facts) >= 30 and len(talk) >= 15
    turns = [(text, True) for text in facts] + [(text, False) for text in talk]
    turns = turns[::2] + turns[1::2]  # facts and talk interleaved, as a day has them
    ids = {}
    for text, _ in turns:
        ids[text] = keep(soul, text)[0]
    text = notebook(soul)
    kept = [f for f in facts if f'"{f}" [log {ids[f]}]' in text]  # verbatim, with the packet it came from
    assert len(kept) >= 0.9 * len(facts), sorted(set(facts) - set(kept))
    from_talk = [t for t in talk if ids[t] in text]
    assert len(from_talk) <= 1, from_talk
    assert soul.engine("soul").count_tokens(text) <= soul.config.memory.notebook_tokens
    cited = re.findall(r"\[log ([0-9a-f-]+)\]", text)
    assert all(soul.store.get(pid).role == "user" for pid in cited)  # each line's source resolves


def test_a_correction_supersedes_and_both_stay_in_history(soul):
    from soulctl.memory import notebook as nb

    first, _ = keep(soul, "My sister Ines lives in Tromsø.")
    keep(soul, "My dog is a beagle called Biscuit.")
    again, found = keep(soul, "Actually, Ines moved to Bergen last month.")
    text = notebook(soul)
    assert "Bergen" in text and again in text and "Tromsø" not in text and first not in text, text
    assert "Biscuit" in text  # the other subject is untouched
    assert [s["by"] for s in found.superseded] == ["Actually, Ines moved to Bergen last month."]
    versions = soul.store.memory_versions("notebook")
    assert any("Tromsø" in v["text"] for v in versions)  # the superseded line stays in the history
    told = nb.review_lines(versions[-1])
    assert any(line.startswith("superseded: ") and "Tromsø" in line and "Bergen" in line for line in told), told
    assert versions[-1]["author"] == "user" and "captured 1 stated fact(s)" in versions[-1]["reason"]
    # a second fact on the same subject that says nothing changed is kept beside it
    keep(soul, "Ines works as a ferry pilot.")
    assert "Bergen" in notebook(soul) and "ferry pilot" in notebook(soul)


def test_a_fact_said_twice_is_kept_once(soul):
    keep(soul, "The wifi password is heron-42.")
    _, found = keep(soul, "The wifi password is heron-42.")
    assert found.version is None and notebook(soul).count("heron-42") == 1


def test_a_full_notebook_lets_its_oldest_captured_line_go(soul):
    engine = soul.engine("soul")
    limit = 80
    kept = [keep(soul, f"My locker number at the pool is {n}.", limit=limit)[1] for n in (101, 202, 303, 404)]
    text = notebook(soul)
    assert engine.count_tokens(text) <= limit and "404" in text and "101" not in text
    assert any(found.evicted for found in kept)


def test_a_rewrite_keeps_only_the_new_lines_the_conversation_supports_each_cited(soul):
    from soulctl.memory.review import Review, ground

    previous = '- the user, 2026-12-07: "My dog is a beagle called Biscuit." [log 0000-a]'
    window = ["My son Tomasz starts school on Monday.", "It is raining again."]
    proposal = ("- the user, 2026-12-07: \"My dog is a beagle called Biscuit.\" [log 0000-a]\n"
                "- Tomasz starts school on Monday.\n"
                "- Tomasz Wren turns five.\n")  # a name the conversation never said
    found = Review()
    text = ground(proposal, previous, window, ["p-school", "p-rain"], soul.embedder, found)
    assert "Tomasz starts school on Monday. [log p-school]" in text
    assert "Wren" not in text and found.unsupported == ["Tomasz Wren turns five."]
    assert "Biscuit" in text and found.cited == [{"line": "Tomasz starts school on Monday.", "packet": "p-school"}]
