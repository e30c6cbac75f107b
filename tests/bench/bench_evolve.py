"""Evolution benchmarks, beside the raw tools doing the same work in the same run.

1. merge: `soulctl merge` (a whole process) vs `mergekit-yaml` on the lineage's own equivalent
   YAML (same anchor, same adapter, same TIES parameters): wall time and peak RSS.
   Targets: time <= 1.0x, peak RSS <= 0.5x of mergekit's.
2. dream: tokens/s of soulctl's trainer vs a bare peft training loop on the same examples,
   batch size and epochs. Target ratio >= 0.9.

Run: .venv/bin/python tests/bench/bench_evolve.py [--home DIR]  (default: a fresh `soulctl init`)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MEASURE = ("import resource, subprocess, sys, time\n"
           "t = time.perf_counter(); p = subprocess.run(sys.argv[1:], capture_output=True)\n"
           "wall = time.perf_counter() - t\n"
           "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
           "print(p.returncode, wall, rss)\n"
           "sys.stderr.write(p.stderr.decode()[-2000:] if p.returncode else '')\n")


def measure(cmd: list[str]) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    code, wall, rss = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{cmd[:3]} failed: {out.stderr}")
    return float(wall), int(rss) * 1024


def random_adapter(home: Path) -> str:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from soulctl.generations.adapters import store_adapter
    from soulctl.home import Home

    model = AutoModelForCausalLM.from_pretrained(home / "generations" / "gen-0000")
    peft_model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, target_modules=["q_proj", "k_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
    staged = home / "data" / "bench-staged"
    peft_model.save_pretrained(staged)
    return store_adapter(Home(home), staged, {"base_generation": "gen-0000"})


def bench_merge(home: Path, tmp: Path) -> None:
    adapter = random_adapter(home)
    wall, rss = measure([sys.executable, "-m", "soulctl", "merge", adapter, "--home", str(home)])
    lineage = json.loads((home / "generations" / "gen-0001" / "lineage.json").read_text())
    config = tmp / "mergekit.yaml"
    config.write_text(lineage["mergekit_yaml"])
    mk = str(Path(sys.executable).parent / "mergekit-yaml")
    mk_wall, mk_rss = measure([mk, str(config), str(tmp / "mk-out"), "--lora-merge-cache",
                               str(tmp / "mk-cache"), "--no-copy-tokenizer"])
    print("merge of one r32 q/k/v adapter into SmolLM2-135M (f32), whole process:")
    print(f"  soulctl merge    {wall:6.1f} s   peak RSS {rss / 2**20:7.0f} MiB")
    print(f"  mergekit-yaml    {mk_wall:6.1f} s   peak RSS {mk_rss / 2**20:7.0f} MiB")
    print(f"  ratio            {wall / mk_wall:6.2f}x time (target <= 1.0), "
          f"{rss / mk_rss:.2f}x RSS (target <= 0.5)")


def bench_dream(home: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from soulctl.evolve.dream import train_adapter
    from soulctl.home.recipe_schemas import DreamRecipe
    from soulctl.evolve.training import batches, encode_conversation

    rows = [json.loads(l) for l in (REPO / "scripts" / "demo-conversation.jsonl").read_text().splitlines()]
    conversations = [[{"role": "user", "content": rows[i]["prose"]},
                      {"role": "assistant", "content": rows[i + 1]["prose"]}] for i in range(0, len(rows), 2)]
    recipe = DreamRecipe()
    recipe = recipe.model_copy(update={"train": recipe.train.model_copy(update={"epochs": 2})})
    model_dir = home / "generations" / "gen-0000"
    meta = train_adapter(model_dir, conversations, recipe, home / "data" / "bench-dream")
    ours = meta["tokens_per_s"]

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.05,
                                             target_modules=["q_proj", "k_proj", "v_proj"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    examples = [encode_conversation(tok, c, 512) for c in conversations]
    tokens = 0
    start = time.perf_counter()
    model.train()
    for _ in range(2):
        random.Random(0).shuffle(examples)
        for ids, labels, mask in batches(examples, 2, tok.eos_token_id):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            tokens += int(mask.sum())
    bare = tokens / (time.perf_counter() - start)
    print("dream, LoRA r32 q/k/v on SmolLM2-135M f32, batch 2, 2 epochs of 16 conversations:")
    print(f"  soulctl trainer  {ours:8.1f} tokens/s")
    print(f"  bare peft loop   {bare:8.1f} tokens/s")
    print(f"  ratio            {ours / bare:8.2f} (target >= 0.9)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", help="an initialized soul home to copy (saves the init)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        if args.home:
            shutil.copytree(args.home, home, symlinks=True)
        else:
            subprocess.run([sys.executable, "-m", "soulctl", "init", str(home), "-q"], check=True)
        bench_merge(home, tmp)
        bench_dream(home)


if __name__ == "__main__":
    main()
