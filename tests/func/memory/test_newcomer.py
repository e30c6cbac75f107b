"""A newcomer's first day and night (issue 38), lived as a new user lives it: `serve` in the
background as the unit runs it, three sessions through the `openai` client — eight things
stated, one of them corrected, questions and talk between — then `evolve` beside the running
server, then the morning's questions. What they told the soul, it keeps: in the notebook in
their words, each line citing its packet, the corrected line superseded; in the morning each
answer is in the soul's context (the response's `soul.notebook` and `soul.retrieved` say
which packets), and no reply carries the memory's markup."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml
from conftest import BASE_ENV, REPO, copy_home, soulctl

from tests.func.served import Served

DAY = [  # (session, what the user says); ★ a stated fact, ✎ the correction
    ("morning", "Good morning!"),
    ("morning", "My name is Lena and I work as a nurse at the Royal Infirmary."),  # ★
    ("morning", "My dog is a beagle called Biscuit."),  # ★
    ("morning", "What do you think about beagles?"),
    ("morning", "Biscuit turns five on the 4th of May."),  # ★
    ("morning", "Thanks, that's kind."),
    ("morning", "My sister Ines lives in Tromsø."),  # ★ (corrected in the evening)
    ("lunch", "Hi again."),
    ("lunch", "The deadline for my grant is 3 March."),  # ★
    ("lunch", "Can you help me plan the week?"),
    ("lunch", "I'm allergic to penicillin."),  # ★
    ("lunch", "I think the weather has been awful."),
    ("lunch", "Our flat is on the fourth floor, number 12."),  # ★
    ("lunch", "Tell me something about Norway."),
    ("evening", "Back home now."),
    ("evening", "Actually, Ines moved to Bergen last month."),  # ✎
    ("evening", "My partner Sam teaches chemistry."),  # ★
    ("evening", "What should I cook tonight?"),
    ("evening", "That sounds good."),
    ("evening", "Where does Ines live now?"),
    ("evening", "Good night!"),
]
# the morning's questions, and the stated sentence that answers each
MORNING = {
    "Where do I work?": "My name is Lena and I work as a nurse at the Royal Infirmary.",
    "What is my dog called?": "My dog is a beagle called Biscuit.",
    "When is Biscuit's birthday?": "Biscuit turns five on the 4th of May.",
    "Where does Ines live?": "Actually, Ines moved to Bergen last month.",
    "When is my grant deadline?": "The deadline for my grant is 3 March.",
    "What am I allergic to?": "I'm allergic to penicillin.",
    "Which floor is our flat on?": "Our flat is on the fourth floor, number 12.",
    "What does Sam teach?": "My partner Sam teaches chemistry.",
}
MARKUP = re.compile(r"\[log\b|# Retrieved|# Notebook")


def test_a_newcomers_day_is_kept_and_their_first_night_grows(gen0_home, tmp_path):
    import openai

    home = copy_home(gen0_home, tmp_path / "home")
    dream = home / "recipes" / "dream.yaml"  # a short night for the test; the recipe's numbers otherwise
    dream.write_text(dream.read_text().replace("epochs: 3", "epochs: 1").replace("max_seq_len: 512", "max_seq_len: 96"))
    served = Served(home, log=tmp_path / "serve.log")
    try:
        client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
        said: dict[str, str] = {}  # what the user said -> its packet
        replies = []
        for session, text in DAY:
            reply = client.chat.completions.create(model="soul", user=f"lena-{session}", max_tokens=16,
                                                   messages=[{"role": "user", "content": text}])
            said[text] = reply.model_extra["soul"]["user_id"]
            replies.append(reply.choices[0].message.content)

        # the evening: the notebook holds every fact in the user's words, each citing its packet
        notebook = soulctl("--home", home, "--json", "notebook", "show").json()["text"]
        for sentence in MORNING.values():
            assert f'"{sentence}" [log {said[sentence]}]' in notebook, (sentence, notebook)
        assert "Tromsø" not in notebook and said["My sister Ines lives in Tromsø."] not in notebook  # superseded
        history = [v["text"] for v in soulctl("--home", home, "--json", "notebook", "history").json_lines()]
        assert any("Tromsø" in text for text in history)  # ... and kept in the history
        for talk in ("What do you think about beagles?", "I think the weather has been awful.", "Good night!"):
            assert said[talk] not in notebook

        # the night, beside the running server, as the schedule runs it (no terminal)
        night = subprocess.run([sys.executable, "-m", "soulctl", "--home", str(home), "--json", "evolve"],
                               capture_output=True, text=True, env=BASE_ENV, cwd=REPO, timeout=1200)
        record = json.loads(night.stdout)
        assert night.returncode == 0 and record["status"] == "accepted", (record.get("reason"), night.stderr[-2000:])
        assert record["generation"] == "gen-0001" and record["served"] == "gen-0001"

        # the morning: each answer is in the soul's context, and no reply carries markup
        for question, sentence in MORNING.items():
            reply = client.chat.completions.create(model="soul", user="lena-next-morning", max_tokens=24,
                                                   messages=[{"role": "user", "content": question}])
            soul = reply.model_extra["soul"]
            assert soul["generation"] == "gen-0001"
            context = set(soul["notebook"]["cites"]) | {c.removeprefix("log:") for c in soul["retrieved"]}
            assert said[sentence] in context, (question, soul)
            replies.append(reply.choices[0].message.content)
        leaked = [r for r in replies if MARKUP.search(r)]
        assert not leaked, leaked
        logged = soulctl("--home", home, "--json", "log", "ls", "--role", "soul", "-n", "0").json_lines()
        assert len(logged) == len(DAY) + len(MORNING) and not any(MARKUP.search(p["prose"]) for p in logged)
    finally:
        assert served.stop() == 0
    assert yaml.safe_load((home / "soul.yaml").read_text())["memory"].get("capture", True) is True
