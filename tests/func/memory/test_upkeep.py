"""What the soul keeps stays true: checked rewrites (coverage by meaning, re-asked, kept or
evicted as packets, reverted), the pressure turn answered after the flush, sampling as a
setting, resonance that ignores junk, retrieval that does not repeat the window or the
question, and a REPL that shows its memory work. The embedded SmolLM2 and MiniLM throughout."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import yaml
from conftest import refused, soulctl
from tests.func.terminal import Terminal


def configure(home, sampling: dict | None = None, **memory) -> None:
    path = home / "soul.yaml"
    data = yaml.safe_load(path.read_text())
    data["memory"].update(memory)
    if sampling:
        data["roles"]["soul"]["sampling"].update(sampling)
    path.write_text(yaml.safe_dump(data))


@contextmanager
def opened(home):
    """The soul of `home` as soul.yaml says now; closed after (its model and store released)."""
    from soulctl.home import Home
    from soulctl.soul import Soul

    soul = Soul(Home(home))
    try:
        yield soul
    finally:
        soul.close()


@pytest.fixture
def soul(home):
    with opened(home) as soul:
        yield soul


# -- the check itself, on texts a model could write ---------------------------------------
def test_a_proposal_is_reviewed_by_meaning(soul):
    from soulctl.memory.review import review, settle

    previous = ("- The cello lesson is on Thursdays, and I'm learning from Ingrid.\n- My vet is Dr. Okafor.\n"
                "- The project is called Aster.\n- The passport is in the blue folder.")
    proposal = "Cello lessons: Thursdays, with Ingrid.\nThe project is now called Birch.\nThe passport expires in March."
    window = ["We renamed the project to Birch yesterday.", "My passport expires in March, I think."]
    found = review(previous, proposal, window, soul.embedder)
    assert found.kept == 1  # the paraphrase of the cello line holds it
    assert found.superseded == [{"line": "The project is called Aster.", "by": "The project is now called Birch."}]
    # a related new line that says no change is a second fact, not a correction: the folder stays
    assert found.dropped == ["My vet is Dr. Okafor.", "The passport is in the blue folder."]
    engine = soul.engine("soul")
    kept = settle(proposal, found, "notebook", previous, 200, engine)
    assert "Dr. Okafor" in kept and "blue folder" in kept and "Birch" in kept and not found.evicted
    # only for room are lines evicted, oldest first (earliest in the previous version)
    found = review(previous, proposal, window, soul.embedder)
    tight = settle(proposal, found, "notebook", previous, engine.count_tokens(proposal) + 10, engine)
    assert found.evicted == ["My vet is Dr. Okafor."] and "blue folder" in tight
    assert engine.count_tokens(tight) <= engine.count_tokens(proposal) + 10


def test_a_repeating_self_definition_is_refused_and_a_notebook_keeps_one_copy(soul):
    from soulctl.errors import CheckFailed
    from soulctl.memory.review import review, settle

    block = "Your self-definition: I am the soul of this machine. I remember what you tell me."
    found = review("I am the soul of this machine.", f"{block}\n{block}\n{block}", [], soul.embedder)
    assert found.repeated and found.echoed
    with pytest.raises(CheckFailed, match="repeats itself"):
        settle(f"{block}\n{block}", found, "self-definition", "I am the soul of this machine.", 200, soul.engine("soul"))
    kept = settle(f"{block}\n{block}", found, "notebook", "", 200, soul.engine("soul"))
    assert kept == "I am the soul of this machine. I remember what you tell me."


# -- rewrites by the model -----------------------------------------------------------------
FACTS = ["The cello lesson is on Thursdays with Ingrid.", "My vet is Dr. Okafor on Elm Street.",
         "The passport is in the blue folder in the desk.", "The project is called Aster.",
         "My sister Mara lives in Porto.", "The boiler service is due in March.",
         "I swim at the lido on Sunday mornings.", "The bike lock code is 4471."]


def test_a_rewrite_that_drops_lines_is_reasked_then_keeps_or_evicts_them(home):
    from soulctl.log import Filters
    from soulctl.log.search import search
    from soulctl.memory import notebook as nb
    from soulctl.memory.session import ChatSession

    configure(home, notebook_tokens=64, window_tokens=512, reply_tokens=24, retrieved_tokens=0)
    with opened(home) as soul:
        nb.write(soul, "notebook", "\n".join(f"- {f}" for f in FACTS), "user", "seeded")
        chat = ChatSession(soul, "drops")
        chat.turn("I started learning the banjo too.")
        version = chat.pressure()
        record = nb.version(soul, "notebook", version)
        found = record["review"]
        assert found["kept"] + len(found["superseded"]) + len(found["dropped"]) == len(FACTS)
        assert found["dropped"], "a 64-token notebook cannot hold eight facts and the banjo: the check must see it"
        assert found["reasked"], found  # a proposal that drops lines is asked again, naming them
        assert "checked: kept" in record["reason"]
        evicted = [p for p in soul.store.list(Filters(session="drops")) if (p.meta or {}).get("kind") == "evicted"]
        assert sorted(p.prose for p in evicted) == sorted(found["evicted"])
        assert chat.engine.count_tokens(record["text"]) <= 64
        for line in found["dropped"]:  # put back, or evicted as a packet
            assert line in record["text"] or line in found["evicted"], (line, record)
        for packet in evicted:  # an evicted fact is found again by searching for it
            hits = search(soul.store, soul.embedder, packet.prose, 5)
            assert packet.id in [h.packet.id for h in hits]
    # the CLI shows what the rewrite did, and takes it back
    shown = soulctl("notebook", "diff", "--home", home)
    assert shown.code == 0 and f"# v{version} by soul" in shown.stdout and "# kept " in shown.stdout
    reverted = soulctl("notebook", "revert", "--json", "--home", home)
    assert reverted.code == 0, reverted
    assert reverted.json() == {"kind": "notebook", "version": version + 1, "restores": version - 1}
    assert soulctl("notebook", "show", "--home", home).stdout.strip() == "\n".join(f"- {f}" for f in FACTS)
    history = soulctl("notebook", "history", "--json", "--home", home).json_lines()
    assert history[0]["reason"] == f"reverted to v{version - 1}" and history[0]["author"] == "user"


def test_notebook_revert_keeps_every_version(home):
    for text in ("first", "second", "third"):
        assert soulctl("notebook", "set", "--home", home, input=text).code == 0
    assert soulctl("notebook", "revert", "1", "--reason", "too soon", "--home", home).stdout.strip() \
        == "notebook v4 restores v1"
    assert soulctl("notebook", "show", "--home", home).stdout.strip() == "first"
    assert [h["text"] for h in soulctl("notebook", "history", "--json", "--home", home).json_lines()] \
        == ["first", "third", "second", "first"]
    refused(soulctl("notebook", "revert", "4", "--home", home), 5, "already the current version")
    refused(soulctl("notebook", "revert", "9", "--home", home), 3, "no notebook version 9")
    refused(soulctl("notebook", "revert", "--self", "--home", home), 3, "no versions to revert")
    assert soulctl("notebook", "revert", "0", "--home", home).code == 0  # the empty notebook before v1
    assert soulctl("notebook", "show", "--home", home).stdout.strip() == ""


def test_the_turn_that_triggers_pressure_is_answered_after_the_flush(home):
    from soulctl.log import Filters
    from soulctl.memory import notebook as nb
    from soulctl.memory.session import ChatSession

    configure(home, window_tokens=256, reply_tokens=24, notebook_tokens=96, retrieved_tokens=0)
    with opened(home) as soul:
        chat = ChatSession(soul, "press")
        said = []
        chat.announce = said.append
        for i in range(40):
            result = chat.turn(f"Note {i}: the heron came back to the pond.")
            if result.flushed:
                break
        assert result.flushed, "the window never reached pressure"
        question = f"Note {i}: the heron came back to the pond."
        version = nb.current(soul, "notebook")["version"]
        # answered with the new notebook in its prompt, and it opens the new window
        assert f"# Notebook\n{nb.current(soul, 'notebook')['text']}" in chat.last_prompt[0]["content"]
        assert chat.last_prompt[-1] == {"role": "user", "content": question}
        assert [t.content for t in chat.window] == [question, result.reply]
        packets = list(soul.store.list(Filters(session="press"), newest_first=False))
        flush = max(i for i, p in enumerate(packets) if (p.meta or {}).get("kind") == "flush")
        assert [p.prose for p in packets[flush + 1:] if not (p.meta or {}).get("kind")] == [question, result.reply]
        assert packets[flush].meta["notebook_version"] == version
        assert any("rewriting the notebook" in s for s in said) and any("window flushed" in s for s in said)
        # a fresh session on the same name rebuilds that same window from the log
        assert [t.content for t in ChatSession(soul, "press").window] == [question, result.reply]


# -- sampling ------------------------------------------------------------------------------
def test_sampling_is_a_setting_of_the_role_the_flags_and_the_api(home):
    from soulctl.home import Home

    sampling = Home(home).config.roles["soul"].sampling
    assert (sampling.temperature, sampling.top_p, sampling.seed) == (0.7, 0.9, 7)
    configure(home, reply_tokens=32, retrieved_tokens=0)  # the same prompt in every session
    args = ("chat", "--temperature", "1.2", "--top-k", "50", "--max-tokens", "12", "--home", home)
    one = soulctl(*args, "--seed", "3", "--session", "a", input="Describe the sea.")
    two = soulctl(*args, "--seed", "3", "--session", "b", input="Describe the sea.")
    assert one.code == 0 and one.stdout == two.stdout  # the same seed, the same reply
    other = soulctl(*args, "--seed", "4", "--session", "c", input="Describe the sea.")
    assert other.code == 0 and other.stdout != one.stdout  # sampled: another seed, another reply
    refused(soulctl("chat", "--top-p", "1.5", "--home", home, input="hi"), 2, "--top-p")
    path = home / "soul.yaml"
    path.write_text(path.read_text().replace("temperature: 0.7", "temperature: 9"))
    refused(soulctl("chat", "--home", home, input="hi"), 5, "roles.soul.sampling.temperature")


def test_sampling_fields_a_backend_lacks_are_refused_by_name():
    from soulctl.engine.sampling import Sampling
    from soulctl.errors import InvalidInput

    Sampling(frequency_penalty=0.5).check("llamacpp")
    with pytest.raises(InvalidInput, match="frequency_penalty is not supported by the transformers backend"):
        Sampling(frequency_penalty=0.5).check("transformers")
    Sampling(json={}).check("llamacpp")  # JSON output by grammar
    with pytest.raises(InvalidInput, match=r"response_format \(JSON output\) is not supported by the mlx backend"):
        Sampling(json={}).check("mlx")


# -- resonance -----------------------------------------------------------------------------
def test_resonance_ignores_junk_and_an_explicit_mark_wins(home):
    lines = [("user", "What did the vet say?"), ("soul", "I'm sorry, I was too busy to respond."),
             ("user", "And the cello?"),
             ("soul", "The lesson moved to Thursday. The lesson moved to Thursday. The lesson moved to Thursday at five."),
             ("user", "Tell me about herons."),
             ("soul", "Herons stand still in shallow water for a long time, then strike at fish with their "
                      "long necks; the grey heron nests in colonies high in trees."),
             ("user", "ok"), ("soul", "Okay.")]
    for role, prose in lines:
        assert soulctl("log", "add", prose, "--role", role, "--session", "junk", "--home", home).code == 0
    scored = soulctl("resonate", "score", "--json", "--home", home).json()
    assert scored["scored"] == 4 and scored["flawed"] == 3
    rows = {r["prose"]: r for r in soulctl("resonate", "top", "--role", "soul", "--json", "--home", home).json_lines()}
    apology = rows["I'm sorry, I was too busy to respond."]
    assert apology["flaws"] == ["boilerplate"] and apology["resonance"] <= 0.05
    novelty = soulctl("log", "sql", f"SELECT score FROM resonance_marks WHERE packet_id = '{apology['id']}' "
                      "AND source = 'novelty'", "--json", "--home", home).json()["score"]
    assert novelty > 0.3  # novel, and still low: junk whatever its novelty
    assert rows["Okay."]["flaws"] == ["short"]
    assert "repetitive" in rows["The lesson moved to Thursday. The lesson moved to Thursday. The lesson moved to Thursday at five."]["flaws"]
    heron = next(r for p, r in rows.items() if p.startswith("Herons"))
    assert heron["flaws"] == [] and heron["resonance"] > 0.2
    assert next(iter(rows)) == heron["prose"]  # the one reply worth learning ranks first
    shown = soulctl("resonate", "top", "--home", home)
    assert "of 4 soul replies qualify" in shown.stderr and "degenerate (" in shown.stderr
    # the user's word wins, whichever path made it and whatever is scored later
    assert soulctl("resonate", "mark", apology["id"], "0.9", "--home", home).code == 0
    assert soulctl("resonate", "score", "--rescore", "--home", home).code == 0
    again = soulctl("log", "show", apology["id"], "--json", "--home", home).json()
    assert (again["resonance"], again["resonance_source"]) == (0.9, "mark")
    plan = soulctl("evolve", "--dry-run", "--json", "--home", home).json()
    assert plan["plan"]["buffer"]["census"]["qualify"] >= 1
    assert "replies qualify" in plan["plan"]["buffer"]["moments"]


# -- retrieval -----------------------------------------------------------------------------
def test_retrieval_skips_the_window_and_ranks_answers_above_the_question_again(home):
    for role, prose in [("user", "My passport is in the blue folder in the hall desk."),
                        ("user", "Where is my passport?"), ("soul", "I do not know."),
                        ("user", "Where is my passport again?"), ("soul", "I cannot say.")]:
        assert soulctl("log", "add", prose, "--role", role, "--session", "old", "--home", home).code == 0
    answers = soulctl("log", "search", "passport", "-k", "2", "--json", "--home", home).json_lines()
    assert answers[0]["prose"].startswith("My passport is in the blue folder")
    plain = soulctl("log", "search", "passport", "-k", "5", "--json", "--home", home).json_lines()
    assert {r["prose"] for r in plain} >= {"Where is my passport?", "Where is my passport again?"}
    from soulctl.memory.session import ChatSession

    configure(home, reply_tokens=16)
    with opened(home) as soul:
        chat = ChatSession(soul, "new")
        chat.turn("I keep spare keys under the blue pot.")
        chat.turn("Where is my passport?")
        system = chat.last_prompt[0]["content"]
        assert "blue folder in the hall desk" in system  # the fact, retrieved
        retrieved = system.split("# Retrieved", 1)[1]
        assert "Where is my passport" not in retrieved  # not the question asked again
        assert "spare keys under the blue pot" not in retrieved  # already in the window


# -- the REPL ------------------------------------------------------------------------------
def test_the_repl_shows_its_memory_and_ctrl_c_stops_only_the_reply(home, tmp_path):
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "lighthouse.md").write_text("# Lighthouse\n\nThe keeper of the Skerryvore lighthouse "
                                          "winds the clockwork lamp at 21:40 every night.\n")
    assert soulctl("mount", "add", "notes", corpus, "--home", home).code == 0
    assert soulctl("mount", "use", "notes", "--home", home).code == 0
    configure(home, window_tokens=320, reply_tokens=256, notebook_tokens=64)
    term = Terminal("chat", "--session", "tty", "--home", home, cwd=home)
    try:
        term.expect(b"[0%] you> ")
        term.send(b"/help\n")
        assert b"/resonate [SCORE]" in term.expect(b"you> ")
        term.send(b"When does the Skerryvore keeper wind the lamp?\n")
        term.expect(b"soul> ")
        shown = term.expect(b"you> ")
        assert b"[1] notes:lighthouse.md:" in shown  # the sources under the reply
        term.send(b"Write a very long story about a lighthouse keeper and the sea, in many chapters.\n")
        term.expect(b"soul> ")
        term.expect(b" ")  # the reply has begun
        term.interrupt()
        term.expect(b"(stopped: the partial reply is logged)")
        term.expect(b"you> ")
        term.send(b"/resonate 0.9\n")
        term.expect(b"marked the last reply at 0.9")
        for i in range(12):  # until the window's pressure flushes it, announced as it runs
            term.send(f"Tell me one thing about tide number {i}.\n".encode())
            before = term.expect(b"you> ")
            if b"rewriting the notebook" in before:
                assert b"window flushed in" in before
                break
        else:
            raise AssertionError(f"no flush announced: {term.seen[-2000:]!r}")
        term.send(b"/quit\n")
        assert term.close() == 0
    finally:
        term.close()
    rows = soulctl("log", "ls", "--session", "tty", "--role", "soul", "--json", "--home", home).json_lines()
    partial = next(r for r in rows if (r["meta"] or {}).get("partial"))
    assert partial["meta"]["cut"] == "interrupted" and partial["prose"]
    # a mark from the REPL reads as one from the CLI, after any later scoring
    assert soulctl("resonate", "score", "--rescore", "--home", home).code == 0
    shown = soulctl("log", "show", partial["id"], "--json", "--home", home).json()
    assert (shown["resonance"], shown["resonance_source"]) == (0.9, "mark")
