"""`seed: null` is a fresh draw per reply — in every process, on every engine — and a fixed seed
is the same reply every time. (Every backend seeds its sampler the same way in a new process,
so before this three `soulctl chat` runs gave one reply word for word.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from conftest import BASE_ENV, REPO, copy_home, soulctl

PROMPT = "Invent a name for a new star and say why."
DRAW = ["--temperature", "1.2", "--top-p", "1", "--top-k", "0", "--min-p", "0", "--max-tokens", "16"]


def unseeded(home) -> None:
    path = home / "soul.yaml"
    data = yaml.safe_load(path.read_text())
    data["roles"]["soul"]["sampling"]["seed"] = None  # the tests' homes fix one; a user's does not
    path.write_text(yaml.safe_dump(data))


def test_three_chat_runs_draw_three_times_and_a_seed_repeats(home, tmp_path):
    """Each run in an identical home (a reply is logged, and the log feeds the next prompt)."""
    unseeded(home)

    def chat(i: int, *flags: str) -> str:
        twin = copy_home(home, tmp_path / f"twin-{i}")
        result = soulctl("--home", twin, "--json", "chat", *DRAW, *flags, PROMPT, process=True)
        assert result.code == 0, result
        return result.json()["reply"]

    texts = [chat(i) for i in range(3)]
    assert len(set(texts)) > 1, texts
    assert chat(3, "--seed", "42") == chat(4, "--seed", "42")


ENGINE_RUN = """
import json, sys
from soulctl.engine import open_engine
from soulctl.engine.sampling import Sampling
from soulctl.home import Home
engine = open_engine(Home(sys.argv[1]), "soul", backend=sys.argv[2])
replies = []
for seed in (None, 7):
    s = Sampling(temperature=1.2, top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0, seed=seed)
    replies.append(engine.chat([{"role": "user", "content": sys.argv[3]}], max_tokens=10, sampling=s))
print(json.dumps(replies))
engine.close()
"""


@pytest.mark.parametrize("backend", ["transformers", "mlx"])
def test_every_engine_draws_afresh_in_each_process(home, backend):
    """Two processes, each drawing once unseeded and once with seed 7."""
    def run() -> list[str]:
        ran = subprocess.run([sys.executable, "-c", ENGINE_RUN, str(home), backend, PROMPT],
                             capture_output=True, text=True, env=BASE_ENV, cwd=REPO, timeout=600)
        assert ran.returncode == 0, ran.stderr[-2000:]
        return json.loads(ran.stdout.strip().splitlines()[-1])

    (free_a, fixed_a), (free_b, fixed_b) = run(), run()
    assert free_a != free_b and fixed_a == fixed_b, (free_a, free_b, fixed_a, fixed_b)
