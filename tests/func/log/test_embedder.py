"""The embedder's two runtimes: numpy (the light path for shell queries) and torch give the
same vectors, and a shell command that embeds a query never imports torch."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np

from tests.conftest import BASE_ENV, REPO, soulctl

WORDS = ("we decided to keep the schema in postgres after the meeting on tuesday , and my sister "
         "moved to lisbon in march . the heron waits by the marsh ; I prefer tea over coffee now ? "
         "notebook anchor generation soul's memory 2026-11-24 42 MiB --json `log search`").split()


def texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14))) for _ in range(n - 6)]
    return out + ["", "   ", "é ü 漢字 😀 — ñ", "word " * 400, "CamelCase HTTP/1.1 200 OK", "a"]


def test_numpy_and_torch_give_the_same_vectors():
    from soulctl.embed import Embedder, bundled_model_dir

    sample = texts(300)  # every length from a word to past the encoder's 256 tokens
    light = Embedder(bundled_model_dir(), runtime="numpy")
    heavy = Embedder(bundled_model_dir(), runtime="torch")
    a, b = light.encode(sample), heavy.encode(sample)
    assert (light.loaded, heavy.loaded) == ("numpy", "torch")
    assert a.dtype == np.float32 and a.shape == (300, light.dim)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cosine = (a * b).sum(axis=1)
    assert cosine.min() >= 0.9999, (cosine.argmin(), cosine.min())
    assert light.count_tokens(sample[:50]) == heavy.count_tokens(sample[:50])


def test_auto_runtime_takes_numpy_for_few_texts_and_torch_for_many():
    from soulctl.embed import LIGHT_MAX, Embedder, bundled_model_dir

    auto = Embedder(bundled_model_dir())
    auto.encode(["one query"])
    assert auto.loaded == "numpy"
    auto.encode(texts(LIGHT_MAX + 1))
    assert auto.loaded == "torch"


def test_a_shell_search_embeds_without_torch(home):
    """`log search` (hybrid and semantic) and `log add` of a line: the light path, no torch,
    and the query's vector is the stored one (same text → top hit with cosine 1)."""
    added = soulctl("--home", home, "--json", "log", "add", "the heron waits by the marsh at dawn")
    assert added.code == 0, added
    probe = ("import sys, json\nfrom soulctl.cli.main import run\n"
             "code = run(sys.argv[1:])\n"
             "print(json.dumps({'torch': 'torch' in sys.modules, 'code': code}), file=sys.stderr)\n")
    for mode in ([], ["--semantic"]):
        proc = subprocess.run([sys.executable, "-c", probe, "--home", str(home), "--json", "log", "search",
                               *mode, "the heron waits by the marsh at dawn"],
                              capture_output=True, text=True, env=BASE_ENV, cwd=REPO.parent)
        status = json.loads(proc.stderr.strip().splitlines()[-1])
        assert status == {"torch": False, "code": 0}, proc.stderr
        top = json.loads(proc.stdout.splitlines()[0])
        assert top["prose"] == "the heron waits by the marsh at dawn"
        if mode:
            assert top["score"] >= 0.9999
