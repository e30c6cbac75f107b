"""soulctl budget through the command line, and against llama.cpp's own allocation."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import BASE_ENV, soulctl

from soulctl.generations.base import bundled_gguf

GiB = 1024**3


def test_mistral_large_acceptance_numbers():
    r = soulctl("budget", "--model", "mistral-large-2407", "--quant", "f16", "--ctx", "131072",
                "--kv", "f16", "--json", "--ram", "1TiB")
    assert r.code == 0, r
    d = r.json()
    assert abs(d["weights_bytes"] - 245.2e9) / 245.2e9 < 0.005
    assert d["kv_bytes_per_token"] == 360448
    assert d["kv_bytes"] == 360448 * 131072
    for key in ("total_bytes", "ram_bytes", "headroom_bytes", "zone", "components"):
        assert key in d
    assert sum(c["bytes"] for c in d["components"]) == d["total_bytes"]
    assert d["headroom_bytes"] == d["ram_bytes"] - d["total_bytes"]


def test_llama_70b_kv_per_token():
    d = soulctl("budget", "--model", "Llama-3.1-70B", "--quant", "f16", "--ctx", "131072",
                "--kv", "f16", "--json", "--ram", "1TiB").json()
    assert d["kv_bytes_per_token"] == 327680


def test_seed_stack_prints_total_and_zone():
    args = ["budget", "--model", "mistral-large-2407", "--quant", "f16", "--ctx", "131072",
            "--kv", "f16", "--majordomo", "hermes-4-70b", "--majordomo-quant", "q8_0",
            "--majordomo-ctx", "131072", "--majordomo-kv", "f16", "--ram", "512GiB", "--apple"]
    human = soulctl(*args)
    assert human.code == 0, human
    assert re.search(r"^total\s+\d+\.\d GiB", human.stdout, re.M)
    assert re.search(r"^zone: (green|yellow)$", human.stdout, re.M)
    d = soulctl(*args, "--json").json()
    roles = [m["role"] for m in d["models"]]
    assert roles == ["soul", "majordomo"]
    assert 380 * GiB < d["total_bytes"] < 450 * GiB
    profile = soulctl("budget", "--profile", "seed-stack", "--json").json()
    assert profile["total_bytes"] == d["total_bytes"]


def test_over_budget_exits_1_with_a_reason():
    r = soulctl("budget", "--model", "llama-3.1-70b", "--quant", "f16", "--ram", "64GiB")
    assert r.code == 1
    assert "zone: red" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("error: over budget by")


def test_fit_solves_the_context():
    d = soulctl("budget", "--model", "llama-3.1-70b", "--quant", "q4_k_m", "--ram", "64GiB",
                "--fit", "--headroom", "4GiB", "--json").json()
    ctx = d["fit"]["context"]
    assert ctx % 256 == 0 and 0 < ctx < 131072
    assert d["context"] == ctx and d["headroom_bytes"] >= 4 * GiB


def test_budget_of_a_gguf_file_is_exact():
    d = soulctl("budget", "--model", bundled_gguf(), "--ctx", "2048", "--json").json()
    assert d["weights_bytes"] == 96_576_768  # the tensors' bytes in the file
    assert d["models"][0]["quant"] == "q4_1" and d["models"][0]["params"] == 134_515_008


def test_budget_reads_soul_yaml_and_measures_stores(home):
    d = soulctl("budget", "--json", "--home", home).json()
    weights = (home / "generations/gen-0000/model.safetensors").stat().st_size
    assert 0 < weights - d["weights_bytes"] < 100_000  # the file = tensors + its header
    assert d["context"] == 8192 and d["kv_bytes_per_token"] == 23040
    stores = {c["name"]: c["bytes"] for c in d["components"]}["stores"]
    assert stores == (home / "data" / "soul.duckdb").stat().st_size  # the (empty) log database
    (home / "corpora" / "notes").mkdir()
    (home / "corpora" / "notes" / "vectors.faiss").write_bytes(b"\0" * 3_000_000)
    after = soulctl("budget", "--json", "--home", home).json()
    assert {c["name"]: c["bytes"] for c in after["components"]}["stores"] == stores + 3_000_000


def test_budget_without_a_home_or_model_says_what_to_do(tmp_path):
    r = soulctl("budget", cwd=tmp_path)
    assert r.code == 3 and "soulctl init" in r.stderr


def test_budget_bad_values_are_one_line_errors():
    for args, code, words in ((["--model", "nope"], 3, "unknown model"),
                              (["--model", "llama-3.1-8b", "--quant", "q9"], 5, "unknown precision"),
                              (["--model", "llama-3.1-8b", "--kv", "f8"], 5, "unknown KV"),
                              (["--model", "llama-3.1-8b", "--ram", "lots"], 5, "bad RAM"),
                              (["--profile", "nope"], 3, "no budget profile")):
        r = soulctl("budget", *args)
        assert r.code == code, (args, r)
        assert len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr


_KV = re.compile(r"KV buffer size =\s+([0-9.]+) MiB")


def test_kv_bytes_match_llama_cpp_allocation():
    """llama-cpp-python loads the embedded GGUF at two contexts; its KV buffer is our kv_bytes."""
    code = ("import sys\nfrom llama_cpp import Llama\n"
            "for ctx in (1024, 4096):\n"
            "    Llama(sys.argv[1], n_ctx=ctx, n_threads=1, verbose=True)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(bundled_gguf())], capture_output=True,
                          text=True, env=BASE_ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured = [float(x) * 2**20 for x in _KV.findall(proc.stderr)]
    assert len(measured) == 2, proc.stderr[-2000:]
    for ctx, real in zip((1024, 4096), measured):
        ours = soulctl("budget", "--model", bundled_gguf(), "--ctx", str(ctx), "--json").json()
        assert abs(ours["kv_bytes"] - real) / real < 0.05, (ctx, ours["kv_bytes"], real)
