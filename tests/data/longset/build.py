"""Build the long-conversation dev set: eight households, two people each talking with their
soul over twelve dated sessions (≥ 300 turns each), and labelled questions in five categories.

Written for soulctl, no outside benchmark's text. Each household's life is drawn with its own
seed from the pools in life.py: a pet and why it has its name, trips, books, a sibling who moves
and what they do there, each person's hobbies and cooking, a health fact, a new job, purchases,
runs, plans for a named day. A fact is said once, in one of several phrasings, often leaning on
the turn before ("It was worth it."), among small talk full of the same names and places, so
finding the right turn takes more than matching a name. Dates are said as people say them
("yesterday", "next Friday", "on the 14th") and the questions ask by the date itself.

Categories: single-hop (one turn, shared words), multi-hop (two turns from different sessions,
both evidence), temporal (the question names a month or a day), paraphrase (the question shares
no content word with the evidence), adversarial (about something never said: no evidence,
counted, not scored).

Run: python tests/data/longset/build.py   (rewrites conversations.jsonl and questions.jsonl)
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import life  # noqa: E402

SESSIONS = 12
TURNS_PER_SESSION = (26, 32)


class Household:
    def __init__(self, spec: dict, seed: str):
        self.rng = random.Random(seed)
        self.a, self.b = spec["people"]
        self.city = spec["city"]
        self.key = spec["key"]
        start = dt.date.fromisoformat(spec["start"])
        self.dates: list[dt.date] = []
        day = start
        for _ in range(SESSIONS):
            self.dates.append(day)
            day += dt.timedelta(days=self.rng.randint(14, 30))
        self.events: list[dict] = []  # {"session", "speaker", "said", "reply", "key"}
        self.questions: list[dict] = []
        self.used: dict[str, set] = {}

    def pick(self, pool: str, items: list):
        """One item of a pool this household has not used yet."""
        seen = self.used.setdefault(pool, set())
        left = [i for i in items if repr(i) not in seen]
        item = self.rng.choice(left)
        seen.add(repr(item))
        return item

    def say(self, session: int, speaker: str, said: str, reply: str | None = None, follow: str | None = None) -> str:
        key = f"e{len(self.events)}"
        self.events.append({"session": session, "speaker": speaker, "said": said, "reply": reply,
                            "follow": follow, "key": key})
        return key

    def ask(self, category: str, text: str, *keys: str) -> None:
        self.questions.append({"category": category, "question": text, "evidence": list(keys)})

    def day(self, session: int) -> dt.date:
        return self.dates[session - 1]


def render(house: Household) -> tuple[list[dict], list[dict]]:
    """The household's packets (log add --jsonl lines) and questions with evidence dia ids."""
    rng = house.rng
    packets, dia_of = [], {}
    for number, date in enumerate(house.dates, 1):
        ts = dt.datetime.combine(date, dt.time(18, rng.randint(0, 59)), dt.timezone.utc)
        session = f"{house.key}-s{number:02d}"
        opener = rng.choice((house.a, house.b))
        turns = [(opener, life.greeting(rng, opener), None), ("soul", rng.choice(life.SOUL_HELLO), None)]
        events = [e for e in house.events if e["session"] == number]
        blocks = []
        for e in events:
            block = [(e["speaker"], e["said"], e["key"]), ("soul", e["reply"] or rng.choice(life.SOUL_NOD), None)]
            if e["follow"]:
                block += [(e["speaker"], e["follow"], None), ("soul", rng.choice(life.SOUL_NOD), None)]
            blocks.append(block)
        want = rng.randint(*TURNS_PER_SESSION) - 2 - sum(map(len, blocks))
        while want > 0:
            speaker = rng.choice((house.a, house.b))
            blocks.append([(speaker, life.small_talk(rng, house, speaker), None),
                           ("soul", rng.choice(life.SOUL_NOD), None)])
            want -= 2
        event_blocks = blocks[:len(events)]
        rng.shuffle(blocks)
        queue = iter(event_blocks)  # events keep the order they were told in
        blocks = [next(queue) if any(b is e for e in event_blocks) else b for b in blocks]
        for turn, (speaker, prose, key) in enumerate(turns + [t for b in blocks for t in b], 1):
            dia = f"{house.key}:S{number}:{turn}"
            if key:
                dia_of[key] = dia
            meta = {"conv": house.key, "dia_id": dia}
            if speaker != "soul":
                meta["speaker"] = speaker
            packets.append({"prose": prose, "role": "soul" if speaker == "soul" else "user",
                            "session": session, "ts": ts.isoformat().replace("+00:00", "Z"), "meta": meta})
            ts += dt.timedelta(minutes=1, seconds=rng.randint(0, 50))
    questions = [{"question": q["question"], "evidence": [dia_of[k] for k in q["evidence"]],
                  "category": q["category"], "conv": house.key} for q in house.questions]
    return packets, questions


def build() -> tuple[list[dict], list[dict]]:
    packets, questions = [], []
    for spec in life.HOUSEHOLDS:
        house = Household(spec, f"soulctl-longset-{spec['key']}")
        life.live(house)
        p, q = render(house)
        packets += p
        questions += q
    return packets, questions


def main() -> None:
    packets, questions = build()
    for path, rows in ((HERE / "conversations.jsonl", packets), (HERE / "questions.jsonl", questions)):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    cats: dict[str, int] = {}
    for q in questions:
        cats[q["category"]] = cats.get(q["category"], 0) + 1
    convs = sorted({p["meta"]["conv"] for p in packets})
    per = [sum(p["meta"]["conv"] == c for p in packets) for c in convs]
    print(f"{len(packets)} turns in {len(convs)} conversations ({min(per)}–{max(per)} each), "
          f"{len({p['session'] for p in packets})} sessions; {len(questions)} questions {cats}")


if __name__ == "__main__":
    main()
