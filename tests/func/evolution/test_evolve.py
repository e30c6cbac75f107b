"""The whole evolution cycle on the embedded SmolLM2: resonate → dream → merge → anchor → gen."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BASE_ENV, REPO, copy_home, refused, soulctl, tree_snapshot
from safetensors import safe_open

CONVERSATION = REPO / "scripts" / "demo-conversation.jsonl"


@pytest.fixture(scope="module")
def evolved(gen0_home, tmp_path_factory):
    """A home that went through one full cycle; tests that change it work on copies."""
    home = tmp_path_factory.mktemp("evolve") / "home"
    copy_home(gen0_home, home)
    assert soulctl("log", "add", "--jsonl", "--home", home, input=CONVERSATION.read_text()).code == 0
    scored = soulctl("resonate", "score", "--json", "--home", home)
    assert scored.code == 0 and scored.json()["scored"] == 16, scored
    buffer = soulctl("resonate", "buffer", "--threshold", "0.45", "--json", "--home", home)  # 6 moments
    assert buffer.code == 0, buffer
    dream = soulctl("dream", "--epochs", "1", "--json", "--home", home, timeout=900)
    assert dream.code == 0, dream
    merge = soulctl("merge", "--json", "--home", home)
    assert merge.code == 0, merge
    return home, buffer.json(), dream.json(), merge.json()


def test_buffer_is_chat_format_with_its_log_ids(evolved):
    home, buffer, _, _ = evolved
    lines = [json.loads(l) for l in Path(buffer["path"]).read_text().splitlines()]
    assert len(lines) == buffer["examples"] > 0
    for line in lines:
        roles = [m["role"] for m in line["messages"]]
        assert roles[-1] == "assistant" and roles[0] == "user"
    assert len(buffer["log_ids"]) == buffer["examples"]
    record = json.loads(Path(buffer["path"]).with_suffix(".json").read_text())
    assert record["sha256"] == buffer["sha256"] and record["threshold"] == 0.45


def test_dream_lowers_the_loss_with_attention_only_lora(evolved):
    from soulctl.generations.adapters import content_sha

    home, buffer, dream, _ = evolved
    assert dream["loss_after"] < dream["loss_before"]
    adapter = home / "data" / "adapters" / dream["id"]
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 32 and config["lora_alpha"] == 64
    assert set(config["target_modules"]) == {"q_proj", "k_proj", "v_proj"}
    assert dream["id"] == "ad-" + content_sha(adapter)[:16]
    meta = json.loads((adapter / "meta.json").read_text())
    assert meta["buffer_sha256"] == buffer["sha256"] and meta["base_generation"] == "gen-0000"
    assert len(meta["loss_curve"]) == dream["steps"] > 0
    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as st:
        assert not [k for k in st.keys() if "mlp" in k]


def test_a_dream_is_bit_reproducible_on_one_machine(evolved, tmp_path):
    """The same buffer, base, recipe and seed: the same adapter bytes, hence the same id — in
    another process, with another string-hash seed (peft keeps target_modules as a set) and
    one thread instead of the machine's."""
    src, buffer, dream, _ = evolved
    home = copy_home(src, tmp_path / "home")
    shutil.rmtree(home / "data" / "adapters" / dream["id"])
    assert soulctl("gen", "use", "gen-0000", "--home", home).code == 0  # the base it was dreamt on
    again = soulctl("dream", buffer["path"], "--epochs", "1", "--json", "--home", home, process=True,
                    env={"PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}, timeout=900)
    assert again.code == 0, again
    assert again.json()["id"] == dream["id"] and again.json()["loss_after"] == dream["loss_after"]


def test_merge_makes_a_verified_generation_with_untouched_tensors_bit_identical(evolved):
    home, _, dream, merge = evolved
    assert merge["id"] == "gen-0001" and merge["parent"] == "gen-0000"
    assert (home / "generations" / "current").resolve().name == "gen-0001"
    assert soulctl("gen", "verify", "--home", home).code == 0
    lineage = json.loads((home / "generations/gen-0001/lineage.json").read_text())
    assert lineage["layers"][0]["adapter"] == dream["id"]
    assert lineage["layers"][0]["density"] == 0.3 and lineage["layers"][0]["weight"] == 0.5
    assert "merge_method: ties" in lineage["mergekit_yaml"]
    a = home / "generations/gen-0000/model.safetensors"
    b = home / "generations/gen-0001/model.safetensors"
    changed = 0
    with safe_open(str(a), framework="pt") as sa, safe_open(str(b), framework="pt") as sb:
        for name in sa.keys():
            same = bool((sa.get_tensor(name) == sb.get_tensor(name)).all())
            if ".mlp." in name or "embed" in name or "norm" in name or "o_proj" in name:
                assert same, name
            changed += not same
    assert changed == 90  # q, k and v of 30 layers


def test_absorption_and_probe_bound(evolved):
    home = evolved[0]
    report = soulctl("anchor", "drift", "--json", "--home", home).json()
    assert report["absorption"] > 0
    assert report["buffers"][0]["loss"] < report["buffers"][0]["parent_loss"]
    assert report["probe_loss_delta"] <= 0.25  # recipes/anchor.yaml
    assert 0 < report["drift"] < 0.01
    assert soulctl("anchor", "check", "--home", home).code == 0
    strict = soulctl("anchor", "check", "--max-drift", "1e-9", "--home", home)
    assert strict.code == 1 and "exceeds" in strict.stdout
    assert report["held_out_absorption"] is None and "nights" not in report  # no slice was held out
    nights = soulctl("anchor", "drift", "--nights", "--json", "--home", home).json()["nights"]
    assert [n["generation"] for n in nights] == ["gen-0001"] and nights[0]["buffer"] == evolved[1]["id"]
    trained = nights[0]["trained"]  # the night's own generation holds all it absorbed
    assert trained["absorbed"] == trained["kept"] > 0 and trained["retention"] == 1.0 and "held_out" not in nights[0]


def test_a_night_holds_a_slice_out_by_a_recorded_seed(evolved, tmp_path):
    """resonate.yaml's holdout: part of the night's new replies kept out of its buffer, in a file
    beside it that no later buffer or dream reads, their ids recorded to stay untrained."""
    from soulctl.evolve.dream import held_out_ids

    home = copy_home(evolved[0], tmp_path / "home")
    with open(home / "recipes" / "resonate.yaml", "a") as recipe:
        recipe.write("holdout: 0.3\nholdout_min_tokens: 40\nholdout_seed: 5\n")
    made = soulctl("resonate", "buffer", "--threshold", "0.45", "--include-learned", "--json", "--home", home)
    assert made.code == 0, made
    assert "holdout" not in made.json()  # a retrain on what was learned holds nothing out
    buffer = soulctl("resonate", "buffer", "--threshold", "0.45", "--json", "--home", home)
    assert buffer.code == 5 and "nothing new" in buffer.stderr  # every moment was learned by gen-0001
    soulctl("gen", "use", "gen-0000", "--home", home)
    buffer = soulctl("resonate", "buffer", "--threshold", "0.45", "--json", "--home", home).json()
    held = buffer["holdout"]
    assert held["seed"] == 5 and held["examples"] == len(held["held_ids"]) >= 2
    assert set(held["held_ids"]).isdisjoint(buffer["log_ids"]) and len(held["held_ids"]) + buffer["examples"] == 6
    path = home / "data" / "buffers" / f"{buffer['id']}.holdout"
    assert len(path.read_text().splitlines()) == held["examples"]
    assert held_out_ids(Path(buffer["path"])) == held["held_ids"]
    assert soulctl("resonate", "buffer", "--threshold", "0.45", "--json", "--home", home).json()["holdout"] == held


def test_gen_diff_and_plots(evolved, tmp_path):
    home = evolved[0]
    d = soulctl("gen", "diff", "gen-0000", "gen-0001", "--json", "--home", home).json()
    assert d["layers_added"] == [evolved[2]["id"]]
    assert d["weights"]["modules"]["down_proj"] == 0 and d["weights"]["modules"]["q_proj"] > 0
    plot = tmp_path / "drift.png"
    assert soulctl("anchor", "plot", plot, "--home", home).code == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gc_then_materialize_is_bit_identical(evolved, tmp_path):
    src = evolved[0]
    home = tmp_path / "home"
    copy_home(src, home)
    weights = home / "generations/gen-0001/model.safetensors"
    before = json.loads((home / "generations/gen-0001/lineage.json").read_text())["manifest"]
    assert soulctl("gen", "use", "gen-0000", "--home", home).code == 0
    dropped = soulctl("gen", "gc", "--keep", "0", "--json", "--home", home).json()
    assert dropped["dropped"] == ["gen-0001"] and not weights.exists()
    assert soulctl("gen", "verify", "--home", home).code == 0
    assert "gc" in soulctl("gen", "ls", "--home", home).stdout
    rebuilt = soulctl("gen", "materialize", "gen-0001", "--json", "--home", home)
    assert rebuilt.code == 0, rebuilt
    assert rebuilt.json()["identical"] and weights.exists()
    from soulctl.generations import sha256_file

    assert sha256_file(weights) == before["model.safetensors"]["sha256"]
    assert soulctl("gen", "verify", "--home", home).code == 0


def test_sigkill_during_merge_leaves_no_generation(evolved, tmp_path):
    src, _, dream, _ = evolved
    home = tmp_path / "home"
    copy_home(src, home)
    soulctl("gen", "use", "gen-0000", "--home", home)
    # a second lineage from the anchor: gen-0002 would be the next generation
    proc = subprocess.Popen([sys.executable, "-m", "soulctl", "merge", dream["id"], "--home", str(home)],
                            env=BASE_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((home / "generations").glob(".tmp-gen-0002-*")):
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (home / "generations/gen-0002").exists()
    assert (home / "generations/current").resolve().name == "gen-0000"
    assert soulctl("gen", "verify", "--home", home).code == 0
    again = soulctl("merge", dream["id"], "--json", "--home", home)
    assert again.code == 0 and again.json()["id"] == "gen-0002"
    assert not list((home / "generations").glob(".tmp-*"))




def test_bad_input_writes_nothing(evolved, tmp_path):
    src, _, dream, _ = evolved
    home = tmp_path / "home"
    copy_home(src, home)
    adapters = home / "data" / "adapters"
    # an adapter from another architecture (the tiny test model's shapes)
    from tests.func.generations.test_merge_ties import tiny_adapter, tiny_home

    tiny = tiny_home(tmp_path / "tiny")
    foreign = tiny_adapter(tiny, 5)
    shutil.copytree(tiny.adapters / foreign, adapters / foreign)
    # a corrupt one: the real adapter's weights cut short
    corrupt = adapters / "ad-corrupt"
    shutil.copytree(adapters / dream["id"], corrupt)
    data = (corrupt / "adapter_model.safetensors").read_bytes()
    (corrupt / "adapter_model.safetensors").chmod(0o644)
    (corrupt / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    empty = home / "data" / "buffers" / "empty.jsonl"
    empty.write_text("")
    before = tree_snapshot(home / "generations")
    adapters_before = sorted(p.name for p in adapters.iterdir())
    refused(soulctl("merge", foreign, "--home", home), 5, "another architecture")
    refused(soulctl("merge", "ad-corrupt", "--home", home), 5, "corrupt safetensors")
    refused(soulctl("dream", str(empty), "--home", home), 5, "is empty")
    refused(soulctl("merge", dream["id"], "--home", home), 5, "already a layer")
    soulctl("gen", "use", "gen-0000", "--home", home)
    refused(soulctl("merge", dream["id"], "--density", "1.5", "--home", home), 5, "outside (0, 1]")
    refused(soulctl("merge", dream["id"], "--density", "0", "--home", home), 5, "outside (0, 1]")
    recipe = home / "recipes" / "merge.yaml"
    recipe.write_text(recipe.read_text().replace("  density: 0.3", "  densty: 0.3"))
    line = next(i for i, l in enumerate(recipe.read_text().splitlines(), 1) if "densty" in l)
    refused(soulctl("merge", dream["id"], "--home", home), 5, f"merge.yaml:{line}: layer.densty: unknown key")
    soulctl("gen", "use", "gen-0001", "--home", home)
    after = tree_snapshot(home / "generations")
    assert {k: v for k, v in after.items() if k != "current"} == \
        {k: v for k, v in before.items() if k != "current"}
    assert sorted(p.name for p in adapters.iterdir()) == adapters_before


def test_encrypted_bundle_round_trip(evolved, tmp_path):
    src = evolved[0]
    home = tmp_path / "home"
    copy_home(src, home)
    key = tmp_path / "soul.key"
    key.write_bytes(bytes(range(32)))
    bundle = tmp_path / "buffer.bundle"
    exported = soulctl("dream", "--epochs", "1", "--export-bundle", bundle, "--key-file", key, "--home", home)
    assert exported.code == 0, exported
    assert b"Ember" not in bundle.read_bytes()  # the buffer travels encrypted
    remote = tmp_path / "gpu"  # the GPU machine: a copy of the base generation, no soul home
    shutil.copytree(home / "generations" / "gen-0001", remote, copy_function=os.link)
    back = tmp_path / "adapter.bundle"
    ran = soulctl("dream", "--run-bundle", bundle, "--base", remote, "-o", back, "--key-file", key,
                  "--json", cwd=tmp_path, timeout=900)
    assert ran.code == 0, ran
    assert ran.json()["loss_after"] < ran.json()["loss_before"]
    imported = soulctl("dream", "--import", back, "--key-file", key, "--json", "--home", home)
    assert imported.code == 0, imported
    adapter = home / "data" / "adapters" / imported.json()["id"]
    assert json.loads((adapter / "meta.json").read_text())["base_generation"] == "gen-0001"
    tampered = tmp_path / "tampered.bundle"
    data = bytearray(back.read_bytes())
    data[-5] ^= 1
    tampered.write_bytes(bytes(data))
    refused(soulctl("dream", "--import", tampered, "--key-file", key, "--home", home), 5,
             "authentication failed")
    other = tmp_path / "other.key"
    other.write_text("00" * 32)
    refused(soulctl("dream", "--import", back, "--key-file", other, "--home", home), 5,
             "wrong key")
    refused(soulctl("dream", "--export-bundle", bundle, "--home", home, env={"SOULCTL_BUNDLE_KEY": ""}),
             5, "no bundle key")


def test_marks_top_and_clusters(evolved, tmp_path):
    src = evolved[0]
    home = tmp_path / "home"
    copy_home(src, home)
    rows = soulctl("log", "ls", "--role", "soul", "-n", "1", "--json", "--home", home).json_lines()
    marked = soulctl("resonate", "mark", rows[0]["id"][:20], "0.97", "--json", "--home", home)
    assert marked.code == 0 and marked.json()["id"] == rows[0]["id"]
    top = soulctl("resonate", "top", "-n", "3", "--json", "--home", home).json_lines()
    assert top[0]["id"] == rows[0]["id"] and top[0]["resonance"] == 0.97
    assert top[0]["resonance_source"] == "mark"
    high = soulctl("log", "ls", "--min-resonance", "0.9", "-q", "--home", home).stdout.split()
    assert high == [rows[0]["id"]]
    plot = tmp_path / "clusters.png"
    result = soulctl("resonate", "clusters", "-k", "2", "--threshold", "0.3", "--plot", plot,
                     "--json", "--home", home)
    assert result.code == 0, result
    groups = result.json_lines()
    assert len(groups) == 2 and sum(g["size"] for g in groups) >= 2
    assert plot.read_bytes()[:4] == b"\x89PNG"
    refused(soulctl("resonate", "mark", rows[0]["id"], "1.5", "--home", home), 5, "outside [0, 1]")
    refused(soulctl("resonate", "buffer", "--threshold", "0.999", "--home", home), 5,
             "no soul packet has resonance")


def test_adapter_config_names_the_generation_not_a_path(evolved):
    home, _, dream, _ = evolved
    config = json.loads((home / "data/adapters" / dream["id"] / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "gen-0000"


def test_judge_scores_each_reply_with_the_rubric(evolved, tmp_path):
    src = evolved[0]
    home = tmp_path / "home"
    copy_home(src, home)
    result = soulctl("resonate", "score", "--judge", "--json", "--home", home, timeout=600)
    assert result.code == 0, result
    assert result.json()["judged"] == 16
    rows = soulctl("log", "sql", "SELECT count(*) AS n, min(score) AS lo, max(score) AS hi "
                   "FROM resonance_marks WHERE source = 'judge'", "--json", "--home", home).json()
    assert rows["n"] == 16 and 0 <= rows["lo"] <= rows["hi"] <= 1 and rows["lo"] < rows["hi"]


def test_llama_cpp_serves_a_new_generation_converted_once(evolved, tmp_path):
    """A merged generation has no GGUF: llama.cpp's converter makes one, recorded beside it and
    outside the immutable directory, which still verifies."""
    import yaml

    home = tmp_path / "home"
    copy_home(evolved[0], home)
    config = yaml.safe_load((home / "soul.yaml").read_text())
    config["roles"]["soul"]["backend"] = "llamacpp"
    (home / "soul.yaml").write_text(yaml.safe_dump(config))
    result = soulctl("chat", "--json", "--home", home, input="What is a river?\n")
    assert result.code == 0, result
    soul = soulctl("log", "show", result.json()["reply_id"], "--json", "--home", home).json()
    assert soul["generation"] == "gen-0001" and soul["meta"]["backend"] == "llamacpp"
    record = json.loads((home / "generations/.derived/gen-0001/derived.json").read_text())
    lineage = json.loads((home / "generations/gen-0001/lineage.json").read_text())
    assert record["kind"] == "conversion" and record["generation"] == "gen-0001"
    assert record["weights"] == {"model.safetensors": lineage["manifest"]["model.safetensors"]["sha256"]}
    gguf = home / "generations/.derived/gen-0001" / record["file"]
    assert gguf.stat().st_size == record["bytes"]
    assert soulctl("gen", "verify", "gen-0001", "--home", home).code == 0
    assert {g["id"] for g in soulctl("gen", "ls", "--json", "--home", home).json_lines()} == {"gen-0000", "gen-0001"}
    before = gguf.stat().st_mtime_ns
    assert soulctl("chat", "--home", home, input="And a lake?\n").code == 0
    assert gguf.stat().st_mtime_ns == before  # converted once


def test_gen_diff_behaviour_answers_the_same_prompts_with_both(evolved, tmp_path):
    """The same prompts, the same seed: what the new generation says differently, and how
    natural each finds the prompt (its loss), with a summary; bad prompt files refused."""
    home = evolved[0]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Who are you?\n\nWhat do you do at night?\nWhat is your anchor?\n")
    args = ("gen", "diff", "gen-0000", "gen-0001", "--behaviour", "--prompts", str(prompts), "--max-tokens", "16")
    d = soulctl(*args, "--json", "--home", home).json()
    seen = d["behaviour"]
    assert [r["prompt"] for r in seen["prompts"]] == ["Who are you?", "What do you do at night?",
                                                      "What is your anchor?"]
    for row in seen["prompts"]:
        assert row["a"]["answer"] and row["b"]["answer"] and row["a"]["loss"] > 0 and row["b"]["loss"] > 0
        assert row["loss_change"] == pytest.approx(row["b"]["loss"] - row["a"]["loss"], abs=1e-5)
        assert row["changed"] == (row["a"]["answer"] != row["b"]["answer"])
    summary = seen["summary"]
    assert summary["prompts"] == 3 and summary["changed"] == sum(r["changed"] for r in seen["prompts"])
    # the dream taught these very questions: the new generation finds them more natural
    assert summary["mean_loss_change"] < 0
    assert d["weights"]["overall"] > 0 and seen["seed"] == 0
    # one generation against itself, same seed: the same answers, no loss change (as a person reads it)
    human = soulctl("gen", "diff", "gen-0001", "gen-0001", "--behaviour", "--prompts", str(prompts),
                    "--max-tokens", "16", "--home", home)
    assert human.code == 0 and "0 of 3 answers changed; mean loss change +0.0000" in human.stdout, human.stdout
    assert "[1] Who are you?" in human.stdout
    for row in seen["prompts"]:
        assert row["b"]["answer"] in human.stdout
    # the probe set by default
    default = soulctl("gen", "diff", "gen-0000", "gen-0001", "--behaviour", "--max-tokens", "4", "--json",
                      "--home", home).json()["behaviour"]
    probes = (home / "recipes" / "probes.txt").read_text().splitlines()
    assert default["summary"]["prompts"] == len([line for line in probes if line.strip()]) > 0
    (tmp_path / "empty.txt").write_text("\n\n")
    refused(soulctl("gen", "diff", "gen-0000", "gen-0001", "--behaviour", "--prompts", str(tmp_path / "empty.txt"),
                    "--home", home), 5, "holds no prompt")
    refused(soulctl("gen", "diff", "gen-0000", "gen-0001", "--behaviour", "--prompts", str(tmp_path / "nope.txt"),
                    "--home", home), 3, "no prompts file")
