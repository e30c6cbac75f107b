"""Build the retrieval dev set: three long multi-session conversations as `log add --jsonl`
lines, and labelled questions for `log eval --by dia_id`.

Each conversation (maya.py, arthur.py, priya.py: hand-written for soulctl) has 14 dated
sessions. A session holds its events (a user turn that questions point at, and the soul's
answer; or, in an exchange, the soul's question and the user's terse answer, which alone does
not say what it is about) among small talk drawn, with a fixed seed, from the same person's life: the same names,
places and topics, so that finding the right turn takes more than matching a name.

Run: python tests/data/devset/build.py   (rewrites conversations.jsonl and questions.jsonl)
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEOPLE = ("maya", "arthur", "priya")
SMALL_TALK_PER_SESSION = (8, 11)  # user/soul pairs of small talk around a session's events

SOUL_SMALL_TALK = [
    "That sounds like a full day.", "How did that make you feel?", "Thanks for telling me.",
    "I'm glad you mentioned it.", "That made me smile.", "Sounds like you needed a quiet evening.",
    "Noted. Anything else on your mind today?", "I hope tomorrow is kinder.",
    "You've had a lot going on lately.", "Small things like that add up.",
    "I like hearing about your days.", "Do you want to talk more about it?",
    "That's a good way to spend an evening.", "It sounds like you handled it well.",
    "I'll remember that.", "That's very you.", "Rest well tonight.", "Tell me more when you can.",
    "Some days are like that.", "Good to hear from you.",
]


def build() -> tuple[list[dict], list[dict]]:
    packets, questions = [], []
    for name in PEOPLE:
        person = importlib.import_module(name)
        rng = random.Random(f"soulctl-devset-{name}")
        exchanges = getattr(person, "EXCHANGES", [])
        keys = {key for _, key, _, _ in person.EVENTS + exchanges}
        dia_of: dict[str, str] = {}
        for number, date in enumerate(person.DATES, 1):
            day = dt.datetime.fromisoformat(date).replace(hour=19, tzinfo=dt.timezone.utc)
            session = f"{name}-s{number:02d}"
            turns: list[tuple[str, str, str | None]] = []
            for _, key, said, answer in (e for e in person.EVENTS if e[0] == number):
                turns.append(("event", said, key))
                turns.append(("soul", answer, None))
            for _, key, asked, answer in (e for e in exchanges if e[0] == number):
                turns.append(("soul", asked, None))
                turns.append(("event", answer, key))
            pairs = []
            for _ in range(rng.randint(*SMALL_TALK_PER_SESSION)):
                lines = rng.sample(person.SMALL_TALK, rng.choice((1, 1, 2)))
                pairs.append([("user", " ".join(lines), None), ("soul", rng.choice(SOUL_SMALL_TALK), None)])
            events = [turns[i:i + 2] for i in range(0, len(turns), 2)]
            order = pairs + events
            rng.shuffle(order)
            # a session opens with a greeting, and the events keep their written order
            queue = iter(events)
            order = [next(queue) if pair in events else pair for pair in order]
            ts = day
            turn = 0
            for pair in [[("user", f"Hi, it's {person.USER}.", None), ("soul", "Hello! How are you today?", None)], *order]:
                for kind, prose, key in pair:
                    turn += 1
                    dia = f"{name}:S{number}:{turn}"
                    if key:
                        dia_of[key] = dia
                    packets.append({"prose": prose, "role": "soul" if kind == "soul" else "user",
                                    "session": session, "ts": ts.isoformat().replace("+00:00", "Z"),
                                    "meta": {"conv": name, "dia_id": dia, "date": ts.date().isoformat()}})
                    ts += dt.timedelta(minutes=1)
        for category, text, evidence in person.QUESTIONS + getattr(person, "EXCHANGE_QUESTIONS", []):
            unknown = [k for k in evidence if k not in keys]
            if unknown:
                raise SystemExit(f"{name}: question {text!r} names unknown events {unknown}")
            questions.append({"question": text, "evidence": [dia_of[k] for k in evidence],
                              "category": category, "conv": name})
    return packets, questions


def main() -> None:
    sys.path.insert(0, str(HERE))
    packets, questions = build()
    for path, rows in ((HERE / "conversations.jsonl", packets), (HERE / "questions.jsonl", questions)):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    cats = {}
    for q in questions:
        cats[q["category"]] = cats.get(q["category"], 0) + 1
    print(f"{len(packets)} turns in {len({p['session'] for p in packets})} sessions; "
          f"{len(questions)} questions {cats}")


if __name__ == "__main__":
    main()
