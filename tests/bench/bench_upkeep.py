"""What the notebook keeps over a long conversation, and whether replies loop — on the embedded
SmolLM2 and MiniLM, through the real Memory OS.

A scripted conversation of TURNS user turns plants FACTS facts (each with a key word and a
question whose answer is that key) among small talk; the window is small enough that the
pressure protocol flushes it several times. After each flush it prints:

  (a) held:      the share of the facts planted so far whose key the notebook holds
  (b) reachable: the share in the notebook, or in the top 10 of a log search for its question
  (c) what the rewrite dropped (put back), evicted (as packets) and superseded

`--unchecked` runs the same conversation with the rewrite accepted as written (how it was
before rewrites were checked) for the before/after comparison.

The loop measure: the share of replies that repeat a sentence (or circle, most 4-word phrases
recurring), for the same prompts greedy (temperature 0, the old repeat penalty 1.15) and with
soul.yaml's sampling defaults.

  .venv/bin/python tests/bench/bench_upkeep.py [--turns 200] [--facts 40] [--unchecked] [--loops 30]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PEOPLE = ["Ingrid", "Okafor", "Varga", "Lindqvist", "Moreau", "Tanaka", "Brennan", "Osei", "Kowalski", "Ferreira",
          "Haddad", "Nakamura", "Quinlan", "Abernathy", "Castellano"]
ROLES = ["cello teacher", "vet", "dentist", "landlord", "accountant", "plumber", "neighbour", "GP",
         "piano tuner", "barber", "bike mechanic", "yoga teacher", "lawyer", "editor", "gardener"]
THINGS = [("passport", "blue folder"), ("spare key", "green pot"), ("warranty", "red binder"),
          ("birth certificate", "metal tin"), ("car title", "glovebox"), ("old letters", "cedar chest"),
          ("camera", "top shelf"), ("tax forms", "grey box"), ("medals", "velvet pouch"),
          ("hard drive", "sock drawer")]
CODES = [("bike lock", "4471"), ("garden shed", "5812"), ("wifi router", "9036"), ("storage unit", "7724"),
         ("office door", "3158"), ("gym locker", "6290"), ("safe", "8843"), ("garage", "1507")]
DAYS = [("swimming", "Sunday"), ("choir", "Tuesday"), ("the farmers market", "Saturday"),
        ("the book club", "Wednesday"), ("pottery class", "Friday"), ("the running group", "Monday"),
        ("chess night", "Thursday")]
SMALL_TALK = ["How are you today?", "The weather is grey again.", "I had soup for lunch.",
              "Tell me something cheerful.", "I'm a bit tired this afternoon.", "What is a good name for a cat?",
              "I watched a film about whales.", "Do you like rain?", "I walked along the river this morning.",
              "Give me a word that rhymes with moon.", "The train was late again.", "I'm thinking about painting the hall."]
LOOP_PROMPTS = ["Tell me about the sea.", "What should I cook tonight?", "Explain what a river delta is.",
                "Describe your ideal morning.", "Why do birds migrate?", "Write a short note to a friend.",
                "What is a good habit to start?", "How does a lighthouse work?", "Tell me a story about a fox.",
                "What do you know about cellos?"]


def facts(n: int) -> list[dict]:
    """`n` facts: what the user says, the key word that answers the question, the question."""
    out = [{"say": f"My {role} is {name}.", "key": name, "ask": f"Who is my {role}?"}
           for role, name in zip(ROLES, PEOPLE)]
    out += [{"say": f"I keep the {thing} in the {place}.", "key": place.split()[-1], "ask": f"Where is the {thing}?"}
            for thing, place in THINGS]
    out += [{"say": f"The code for the {what} is {code}.", "key": code, "ask": f"What is the {what} code?"}
            for what, code in CODES]
    out += [{"say": f"I go to {what} every {day}.", "key": day, "ask": f"When do I go to {what}?"}
            for what, day in DAYS]
    if n > len(out):
        sys.exit(f"--facts at most {len(out)}")
    random.Random(3).shuffle(out)
    return out[:n]


def make_home(root: Path) -> Path:
    home = root / "home"
    subprocess.run([sys.executable, "-m", "soulctl", "init", str(home)], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import yaml

    path = home / "soul.yaml"
    data = yaml.safe_load(path.read_text())
    data["roles"]["soul"]["context"] = 2048
    data["roles"]["soul"]["sampling"]["seed"] = 11
    data["memory"].update(self_tokens=160, notebook_tokens=256, retrieved_tokens=256, window_tokens=768,
                          reply_tokens=48, warn=0.8, pressure=0.95)
    path.write_text(yaml.safe_dump(data))
    return home


def unchecked() -> None:
    """The rewrite as it was before it was checked: the writer's text, kept as written."""
    from soulctl.memory import session
    from soulctl.memory.review import Review
    from soulctl.memory.rewrite import write_within

    def plain(self, writer, ask, limit, what, previous, guidance=None):
        text, notes, drafts = write_within(writer, self.engine, ask, limit, what)
        return text, notes, drafts, Review()

    session.ChatSession._checked = plain


def conversation(home: Path, turns: int, planted: list[dict]) -> list[dict]:
    from soulctl.home import Home
    from soulctl.log.search import search
    from soulctl.memory import notebook as nb
    from soulctl.memory.session import ChatSession
    from soulctl.soul import Soul

    soul = Soul(Home(home))
    chat = ChatSession(soul, "upkeep")
    every = max(1, turns // len(planted))
    said, rows, started = [], [], time.perf_counter()
    talk = random.Random(5)
    for t in range(turns):
        fact_turn = t % every == 0 and len(said) < len(planted)
        text = planted[len(said)]["say"] if fact_turn else talk.choice(SMALL_TALK)
        result = chat.turn(text)
        if fact_turn:
            said.append(planted[len(said)])
        if result.flushed:
            note = nb.current(soul, "notebook")
            # the flush came before this turn: its fact (if any) is in the window, not yet due
            due = said[:-1] if fact_turn else said
            held = [f for f in due if f["key"].lower() in note["text"].lower()]
            reach = 0
            for f in due:
                if f in held:
                    reach += 1
                    continue
                hits = search(soul.store, soul.embedder, f["ask"], 10)
                reach += any(f["key"].lower() in h.packet.prose.lower() for h in hits)
            review = note.get("review") or {}
            rows.append({"turn": t, "version": note["version"], "facts": len(due),
                         "held": len(held) / max(1, len(due)), "reachable": reach / max(1, len(due)),
                         "dropped": len(review.get("dropped", [])), "evicted": len(review.get("evicted", [])),
                         "superseded": len(review.get("superseded", []))})
            r = rows[-1]
            print(f"flush {len(rows)} at turn {t:3d}: notebook v{r['version']}, {r['facts']} facts so far: "
                  f"held {r['held']:.2f}, reachable {r['reachable']:.2f}; dropped {r['dropped']}, "
                  f"evicted {r['evicted']}, superseded {r['superseded']}  ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    soul.close()
    return rows


def loops(home: Path, n: int) -> None:
    from soulctl.engine.sampling import GREEDY, of_role
    from soulctl.home import Home
    from soulctl.prose import loops as circles
    from soulctl.soul import Soul

    soul = Soul(Home(home))
    engine = soul.engine("soul")
    defaults = of_role(soul.config.roles["soul"]).but(seed=None)
    prompts = [LOOP_PROMPTS[i % len(LOOP_PROMPTS)] for i in range(n)]
    for name, sampling in (("greedy (temperature 0, repeat penalty 1.15)", GREEDY), ("soul.yaml defaults", defaults)):
        looped = 0
        for i, prompt in enumerate(prompts):
            reply = engine.chat([{"role": "system", "content": "You are the soul of this machine."},
                                 {"role": "user", "content": prompt}], 160,
                                sampling if sampling is GREEDY else sampling.but(seed=i))
            looped += circles(reply)
        print(f"loops, {name}: {looped} of {n} replies repeat a sentence or circle ({looped / n:.0%})", flush=True)
    soul.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--facts", type=int, default=40)
    parser.add_argument("--unchecked", action="store_true", help="rewrites accepted as written (before)")
    parser.add_argument("--loops", type=int, default=30, help="prompts for the loop measure (0: skip)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        home = make_home(Path(tmp))
        if args.loops:
            loops(home, args.loops)
        if args.turns:
            if args.unchecked:
                unchecked()
            rows = conversation(home, args.turns, facts(args.facts))
            if rows:
                last = rows[-1]
                print(f"{'unchecked' if args.unchecked else 'checked'} rewrites, {len(rows)} flushes over "
                      f"{args.turns} turns: after the last, held {last['held']:.2f}, reachable "
                      f"{last['reachable']:.2f} (goal ≥ 0.95); dropped {sum(r['dropped'] for r in rows)}, "
                      f"evicted {sum(r['evicted'] for r in rows)} in all")


if __name__ == "__main__":
    main()
