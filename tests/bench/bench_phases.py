"""The budget of the night's phases beside what they really take: `soulctl dream` and
`soulctl merge` on the embedded SmolLM2 (the dream with and without gradient checkpointing), each in a process of its own whose peak RSS is read
from the kernel (wait4), against `budget --phase dream|merge` for the same recipe and buffer
(as the KV figure was checked against llama.cpp's own allocation).

  .venv/bin/python tests/bench/bench_phases.py [--tokens 64,160,400] [--batch 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
WORDS = "the heron waits at the weir while the river carries the mountain down to the sea".split()


def run(home: Path, *args: str) -> tuple[dict, int]:
    """The command's JSON and the peak RSS of its process, in bytes."""
    proc = subprocess.Popen([sys.executable, "-m", "soulctl", "--home", str(home), "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{args[0]} failed: {err.decode()[-500:]}")
    return json.loads(out), usage.ru_maxrss * 1024  # KiB on Linux


def buffer(path: Path, tokens: int, examples: int) -> None:
    """`examples` conversations whose reply is about `tokens` long."""
    lines = []
    for i in range(examples):
        reply = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(int(tokens * 0.8)))
        lines.append(json.dumps({"messages": [{"role": "user", "content": f"Tell me about the river, {i}."},
                                              {"role": "assistant", "content": reply}]}))
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", default="64,160,400")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    from soulctl.evolve.night import phases
    from soulctl.home import Home
    from soulctl.soul import Soul

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        subprocess.run([sys.executable, "-m", "soulctl", "init", str(home)], env=ENV, cwd=REPO, check=True,
                       capture_output=True)
        soul = Soul(Home(home))
        recipe = home / "recipes" / "dream.yaml"
        recipe.write_text(recipe.read_text().replace("batch_size: 2", f"batch_size: {args.batch}"))

        def planned(path=None, phase="dream") -> tuple[int, int]:
            examples = path.read_text().splitlines() if path is not None else None
            plan = phases(Soul(Home(home)), examples)  # the recipe read anew
            part = plan[phase] if phase == "merge" else plan["dream"][plan["dream"]["recipe"]]
            return part["bytes"], plan["dream"]["training"]["tokens"]
        print(f"{'phase':8s} {'tokens':>6s} {'budget':>10s} {'measured':>10s} {'budget/measured':>16s}")
        adapter = None
        for tokens in [int(t) for t in args.tokens.split(",")]:
            path = Path(tmp) / f"buf-{tokens}.jsonl"
            buffer(path, tokens, examples=2 * args.batch)
            dreamt, peak = run(home, "dream", str(path), "--epochs", "1")
            adapter = dreamt["id"]
            budget, used = planned(path)
            print(f"{'dream':8s} {used:6d} {budget / 2**20:8.0f} MiB {peak / 2**20:8.0f} MiB "
                  f"{budget / peak:16.2f}")
        # the largest again, with gradient checkpointing
        recipe.write_text(recipe.read_text().replace("gradient_checkpointing: false", "gradient_checkpointing: true"))
        dreamt, peak = run(home, "dream", str(path), "--epochs", "1")
        budget, used = planned(path)
        print(f"{'dream ck':8s} {used:6d} {budget / 2**20:8.0f} MiB {peak / 2**20:8.0f} MiB "
              f"{budget / peak:16.2f}")
        merged, peak = run(home, "merge", adapter)
        budget, _ = planned(phase="merge")
        print(f"{'merge':8s} {'-':>6s} {budget / 2**20:8.0f} MiB {peak / 2**20:8.0f} MiB {budget / peak:16.2f}")


if __name__ == "__main__":
    main()
