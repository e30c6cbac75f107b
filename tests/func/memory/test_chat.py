"""Memory OS and chat on the embedded SmolLM2, real embedder, on each log backend (DuckDB and
PostgreSQL + pgvector)."""

from __future__ import annotations

import pytest
import yaml
from conftest import BACKENDS, copy_home, refused, soulctl, use_backend


@pytest.fixture(params=BACKENDS)
def home(gen0_home, tmp_path, request):
    return use_backend(copy_home(gen0_home, tmp_path / "home"), request.param)


def configure(home, **memory):
    path = home / "soul.yaml"
    data = yaml.safe_load(path.read_text())
    data["memory"].update(memory)
    for key in ("context",):
        if key in memory:
            data["roles"]["soul"]["context"] = memory.pop(key)
            data["memory"].pop(key)
    path.write_text(yaml.safe_dump(data))


def test_notebook_versions(home):
    assert "soul of this machine" in soulctl("notebook", "show", "--self", "--home", home).stdout
    assert soulctl("notebook", "show", "--home", home).stdout.strip() == ""
    assert soulctl("notebook", "set", "--home", home, input="rivers matter\n").stdout.strip() == "notebook v1"
    assert soulctl("notebook", "set", "--reason", "more", "--home", home, input="rivers and seas\n").code == 0
    history = soulctl("notebook", "history", "--json", "--home", home).json_lines()
    assert [(h["version"], h["author"]) for h in history] == [(2, "user"), (1, "user")]
    assert history[0]["reason"] == "more"
    d = soulctl("notebook", "diff", "--home", home).stdout
    assert "-rivers matter" in d and "+rivers and seas" in d
    assert soulctl("notebook", "set", "--self", "--home", home, input="You are Ember.\n").code == 0
    assert soulctl("notebook", "show", "--self", "--home", home).stdout.strip() == "You are Ember."
    refused(soulctl("notebook", "edit", "--home", home), 5, "needs a terminal")


def test_one_shot_chat_logs_linked_packets(home):
    configure(home, reply_tokens=24)
    result = soulctl("chat", "--session", "one", "--home", home, input="What is a river?\n")
    assert result.code == 0, result
    assert result.stdout.strip() and result.stderr.strip() == ""
    rows = soulctl("log", "ls", "--session", "one", "--json", "--home", home).json_lines()
    soul, user = rows
    assert (user["role"], soul["role"]) == ("user", "soul") and soul["parent"] == user["id"]
    assert user["prose"] == "What is a river?" and soul["prose"] == result.stdout.strip()
    assert soul["generation"] == "gen-0000" and soul["meta"]["prompt_tokens"] > 0
    full = soulctl("log", "show", soul["id"], "--json", "--home", home).json()
    assert len(full["embedding"]) == 384


@pytest.fixture
def session(home):
    from soulctl.home import Home
    from soulctl.memory.session import ChatSession
    from soulctl.soul import Soul

    opened = []

    def make(name="s", **memory):
        configure(home, **memory)
        soul = Soul(Home(home))
        opened.append(soul)
        return ChatSession(soul, name)

    yield make
    for soul in opened:  # the store's server (Postgres) and the model are released with the test
        soul.close()


def test_pressure_protocol_keeps_every_request_inside_the_context(session):
    chat = session("pressure", context=1024, window_tokens=256, notebook_tokens=96,
                   reply_tokens=32, retrieved_tokens=64, self_tokens=256)
    topics = ["the heron", "the tide", "the lantern", "the orchard", "the glacier", "the violin"]
    flushes, turns = 0, 16  # about four turns fill the window: three flushes or more
    for i in range(turns):
        result = chat.turn(f"Turn {i}: tell me one short fact about {topics[i % len(topics)]}.")
        flushes += result.flushed
        assert result.prompt_tokens + 32 <= 1024
    assert flushes >= 2
    store = chat.store
    versions = store.memory_versions("notebook")
    assert len(versions) >= 2 and {v["author"] for v in versions} == {"soul"}
    from soulctl.log import Filters

    packets = list(store.list(Filters(session="pressure"), newest_first=False))
    assert sum(1 for p in packets if (p.meta or {}).get("kind") == "flush") == flushes
    prompts = [p.meta["prompt_tokens"] for p in packets if p.role == "soul" and not p.meta.get("kind")]
    assert len(prompts) == turns and max(prompts) + 32 <= 1024
    # the first turns were flushed from the window but stay in the log, found by search
    from soulctl.log.search import search

    hits = search(store, chat.embedder, "Turn 0: tell me one short fact about the heron", 5,
                  filters=Filters(session="pressure"))
    assert any(h.packet.prose.startswith("Turn 0:") for h in hits)


def test_an_overlong_notebook_is_enforced_never_dropped(session):
    from soulctl.log import Filters
    from soulctl.memory import notebook as nb

    chat = session("enforce", window_tokens=256, notebook_tokens=64, reply_tokens=16, retrieved_tokens=0)
    facts = " ".join(f"Fact {i}: the heron number {i} nests by the mill pond in spring." for i in range(25))
    nb.write(chat.soul, "notebook", facts, "user", "seeded long")
    nb.write(chat.soul, "self", "You are a helpful assistant.", "user", "plain")
    chat.turn("Write a long detailed story about the heron by the mill pond.")
    chat.pressure()
    latest = chat.store.memory_versions("notebook")[-1]
    # the model wrote more than its sector holds: asked again, then trimmed, and the log says so
    assert latest["author"] == "soul" and latest["text"]
    assert chat.engine.count_tokens(latest["text"]) <= 64
    assert "re-asked (draft of" in latest["reason"], latest
    # every seeded fact is held by the new notebook or evicted for room as a packet: none lost
    review = latest["review"]
    evicted = {p.prose for p in chat.store.list(Filters(session="enforce"))
               if (p.meta or {}).get("kind") == "evicted"}
    assert review["kept"] + len(review["superseded"]) + len(review["dropped"]) == 25
    assert set(review["evicted"]) == evicted
    text = latest["text"]
    assert all(line in text or line in evicted for line in review["dropped"]), review
    packets = list(chat.store.list(Filters(session="enforce"), newest_first=False))
    rewrite = next(p for p in packets if (p.meta or {}).get("kind") == "notebook")
    assert rewrite.prose == latest["text"] and rewrite.meta["reason"] == latest["reason"]
    # the over-long draft is kept with the rewrite, not dropped
    assert rewrite.meta["drafts"] and chat.engine.count_tokens(rewrite.meta["drafts"][0]) > 64
    assert any((p.meta or {}).get("kind") == "flush" for p in packets)
    from soulctl.memory.rewrite import trim_to_tokens

    long_text = "Ada lives in Lisbon. " * 40
    assert chat.engine.count_tokens(trim_to_tokens(chat.engine, long_text, 64)) <= 64


def test_retrieved_sector_cites_a_mounted_corpus(session, tmp_path):
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "lighthouse.md").write_text("# Lighthouse\n\nThe keeper of the Skerryvore lighthouse "
                                          "winds the clockwork lamp at 21:40 every night.\n")
    chat = session("retrieve", reply_tokens=16)
    assert soulctl("mount", "add", "notes", corpus, "--home", chat.home.root).code == 0
    assert soulctl("mount", "use", "notes", "--home", chat.home.root).code == 0
    result = chat.turn("When does the Skerryvore keeper wind the lamp?")
    system = chat.last_prompt[0]["content"]
    assert "# Retrieved" in system and "lighthouse.md:" in system and "21:40" in system
    assert any(c.startswith("notes:lighthouse.md:") for c in result.retrieved)


def test_the_soul_rewrites_its_self_definition(home, session):
    configure(home, self_tokens=64)
    assert soulctl("chat", "--session", "r", "--home", home, input="I like rivers.\n").code == 0
    result = soulctl("notebook", "rewrite", "--self", "--guidance", "You love herons.", "--session", "r",
                     "--json", "--home", home)
    assert result.code == 0, result
    record = result.json()
    assert (record["kind"], record["version"], record["author"]) == ("self", 1, "soul")
    assert record["reason"].startswith("rewritten by the soul (You love herons.)")
    assert record["text"] and len(record["text"].split()) <= 64  # a word is at least one token
    assert soulctl("notebook", "show", "--self", "--home", home).stdout.strip() == record["text"]
    history = soulctl("notebook", "history", "--self", "--json", "--home", home).json_lines()
    assert [(h["version"], h["author"]) for h in history] == [(1, "soul")]
    packets = soulctl("log", "ls", "--session", "r", "--json", "--home", home).json_lines()
    packet = next(p for p in packets if (p["meta"] or {}).get("kind") == "self")
    assert (packet["role"], packet["meta"]["version"]) == ("soul", 1)
    # what the rewrite dropped of the old self-definition is in it again, or evicted as packets
    evicted = [p["prose"] for p in packets if (p["meta"] or {}).get("kind") == "evicted"]
    assert sorted(evicted) == sorted(record["review"]["evicted"])
    assert packet["prose"] == record["text"]
    # the next turn is made with the new self-definition: it opens the prompt
    chat = session("r")
    chat.turn("Who are you?")
    assert chat.last_prompt[0]["role"] == "system"
    assert chat.last_prompt[0]["content"].startswith(record["text"] + "\n\n# Notebook")


def test_rewrite_refusals_write_nothing(home):
    refused(soulctl("notebook", "rewrite", "--home", home), 5, "name one")
    refused(soulctl("notebook", "rewrite", "--guidance", "calm", "--session", "x", "--home", home), 5,
            "--guidance goes with --self")
    refused(soulctl("notebook", "rewrite", "--session", "nobody", "--home", home), 5, "no turns")
    huge = "You are the soul of this machine and you remember every river. " * 60  # within 1024
    assert soulctl("notebook", "set", "--self", "--home", home, input=huge).code == 0
    configure(home, context=512, window_tokens=256, reply_tokens=16, retrieved_tokens=0, notebook_tokens=64,
              self_tokens=128)
    refused(soulctl("notebook", "rewrite", "--self", "--home", home), 5, "the model's context is 512")
    history = soulctl("notebook", "history", "--self", "--json", "--home", home).json_lines()
    assert [h["author"] for h in history] == ["user"]
    assert soulctl("notebook", "history", "--json", "--home", home).json_lines() == []
