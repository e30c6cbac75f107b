"""The nightly habit, ten nights in a row, on the embedded SmolLM2 (issue: `evolve` as one safe
step). Each night one new scripted conversation is logged, its soul replies are marked, and
`soulctl evolve` runs as a whole process. Printed per cycle: buffer size, whether the buffer
holds only that night's replies, wall time, drift from the anchor, probe loss Δ, absorption
(buffer perplexity below the parent's), loss before/after. Then the checks on generation 10:
MLP and embedding tensors bit-identical to the anchor, and `gen gc` + `gen materialize`
reproducing its sha256.

Targets: every buffer holds only its night's replies; the last cycle's wall time within 1.3×
the first's; every generation absorbs its buffer (absorption > 0) with the probe loss within
recipes/anchor.yaml's bound.

Run: .venv/bin/python tests/bench/bench_growth.py [--cycles 10] [--epochs 1] [--keep DIR]
(the dream recipe's epochs are set to --epochs for every cycle alike, to keep ten cycles
within ~15 min on 2 cores; the first cycle and the last do the same work either way).
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

TOPICS = [
    ("the river", ["heron", "weir", "eddy", "willow", "otter"]),
    ("the lighthouse", ["lamp", "keeper", "fog", "gull", "logbook"]),
    ("the orchard", ["quince", "frost", "ladder", "bee", "cider"]),
    ("the observatory", ["comet", "lens", "dome", "nebula", "chart"]),
    ("the bakery", ["starter", "oven", "rye", "flour", "dawn"]),
    ("the mountain pass", ["cairn", "scree", "marmot", "snowfield", "rope"]),
    ("the library", ["index", "vellum", "reading lamp", "archive", "margin"]),
    ("the harbour", ["tide", "net", "buoy", "ferry", "salt"]),
    ("the greenhouse", ["fern", "seedling", "mist", "trellis", "orchid"]),
    ("the forge", ["anvil", "ember", "tongs", "bellows", "quench"]),
]
FEELINGS = ["patience", "wonder", "stubbornness", "gratitude", "restlessness", "calm", "curiosity"]
VERBS = ["taught me", "reminded me of", "showed me", "gave me", "asked me for", "left me with"]
QUESTIONS = ["What did you notice about the {t}?", "Tell me about the {t} again.",
             "Why does the {t} matter to you?", "What would you keep from the {t}?",
             "How did the {t} change today?"]


def conversation(night: int, replies: int = 25) -> list[dict]:
    """One night's talk: `replies` exchanges on one place, in one session, all distinct."""
    place, things = TOPICS[night % len(TOPICS)]
    rng = random.Random(night)
    session = f"night-{night + 1:02d}"
    rows = []
    for i in range(replies):
        thing = things[i % len(things)]
        other = things[(i * 3 + 1) % len(things)]
        feeling = rng.choice(FEELINGS)
        rows.append({"prose": rng.choice(QUESTIONS).format(t=thing), "role": "user", "session": session})
        rows.append({"prose": f"At {place}, the {thing} {rng.choice(VERBS)} {feeling}; on night {night + 1} "
                              f"I counted {rng.randint(2, 97)} of them beside the {other}, and moment {i + 1} "
                              f"stays with me as {rng.choice(FEELINGS)}.",
                     "role": "soul", "session": session})
    return rows


def soulctl(home: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "soulctl", "--home", str(home), *args], input=input,
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def must(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        sys.exit(f"{' '.join(proc.args[3:])} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return proc


def set_recipe(home: Path, name: str, old: str, new: str) -> None:
    path = home / "recipes" / f"{name}.yaml"
    text = path.read_text()
    if old not in text:
        sys.exit(f"recipes/{name}.yaml has no {old!r}")
    path.write_text(text.replace(old, new, 1))


def night(home: Path, n: int) -> tuple[dict, set[str]]:
    rows = conversation(n)
    added = must(soulctl(home, "--json", "log", "add", "--jsonl", input="".join(json.dumps(r) + "\n" for r in rows)))
    ids = [json.loads(line) for line in added.stdout.splitlines()]
    soul_ids = {p["id"] for p in ids if p["role"] == "soul"}
    from soulctl.home import Home
    from soulctl.soul import Soul

    soul = Soul(Home(home))  # marks in one transaction, as a user's script would with `resonate mark`
    soul.store.mark_many([(pid, 1.0, "mark") for pid in sorted(soul_ids)])
    soul.close()
    t = time.perf_counter()
    proc = soulctl(home, "--json", "evolve")
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        must(proc)
    record = json.loads(proc.stdout)
    record["wall"] = wall
    return record, soul_ids


def untouched_identical(home: Path, gid: str) -> tuple[int, int]:
    """(tensors compared, tensors differing) over MLP and embedding tensors, gid vs the anchor."""
    from safetensors import safe_open

    compared = differing = 0
    for path in sorted((home / "generations" / "gen-0000").glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as a, \
                safe_open(str(home / "generations" / gid / path.name), framework="numpy") as b:
            for name in a.keys():
                if "mlp" in name or "embed" in name:
                    compared += 1
                    differing += int(a.get_tensor(name).tobytes() != b.get_tensor(name).tobytes())
    return compared, differing


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="build the home here and keep it")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-growth-"))
    home = root / "home"
    try:
        print(f"init {home} …", file=sys.stderr)
        must(soulctl(home, "init", str(home)))
        set_recipe(home, "dream", "epochs: 3", f"epochs: {args.epochs}")
        limits = json.loads(must(soulctl(home, "--json", "evolve", "--dry-run")).stdout)["plan"]["anchor"]
        rows, learned = [], set()
        header = (f"{'cycle':>5} {'gen':>8} {'status':>8} {'buffer':>6} {'only new':>8} {'wall s':>7} "
                  f"{'drift':>9} {'probe Δ':>8} {'absorb':>8} {'loss before→after':>18}  stages (s): score buffer dream merge check")
        print(header)
        for n in range(args.cycles):
            record, new_ids = night(home, n)
            buffer = json.loads((home / "data" / "buffers" / f"{record['buffer']}.json").read_text())
            in_buffer = set(buffer["log_ids"])
            only_new = in_buffer <= new_ids and not (in_buffer & learned)
            learned |= in_buffer
            rows.append({**record, "only_new": only_new, "buffer_size": len(in_buffer)})
            loss = record.get("loss") or [float("nan")] * 2
            print(f"{n + 1:>5} {record['generation'] or '-':>8} {record['status']:>8} {len(in_buffer):>6} "
                  f"{str(only_new):>8} {record['wall']:>7.1f} {record.get('drift') or 0:>9.6f} "
                  f"{record.get('probe_loss_delta') or 0:>+8.4f} {record.get('absorption') or 0:>+8.4f} "
                  f"{loss[0]:>8.4f}→{loss[1]:<8.4f}  "
                  + " ".join(f"{record['timings'].get(k, 0):.1f}" for k in ("score", "buffer", "dream", "merge", "check")),
                  flush=True)
        last = rows[-1]["generation"]
        compared, differing = untouched_identical(home, last)
        current = (home / "generations" / "current").resolve().name
        from soulctl.generations import read_lineage
        from soulctl.home import Home

        hashes = read_lineage(Home(home), last).hashes
        must(soulctl(home, "gen", "use", "gen-0000"))
        dropped = json.loads(must(soulctl(home, "--json", "gen", "gc", "--keep", "0")).stdout)["dropped"]
        gone = not any((home / "generations" / last).glob("*.safetensors"))
        t = time.perf_counter()
        made = json.loads(must(soulctl(home, "--json", "gen", "materialize", last)).stdout)
        rebuild_s = time.perf_counter() - t
        from soulctl.generations.build import sha256_file

        reproduced = all(sha256_file(home / "generations" / last / rel) == sha
                         for rel, sha in hashes.items())
        must(soulctl(home, "gen", "use", current))

        walls = [r["wall"] for r in rows]
        print()
        print(f"accepted: {sum(r['status'] == 'accepted' for r in rows)}/{len(rows)}; "
              f"buffers only new: {all(r['only_new'] for r in rows)}; "
              f"buffer sizes {min(r['buffer_size'] for r in rows)}–{max(r['buffer_size'] for r in rows)}")
        print(f"wall time: first {walls[0]:.1f} s, last {walls[-1]:.1f} s, ratio {walls[-1] / walls[0]:.2f}x "
              f"(target ≤ 1.3x); mean {sum(walls) / len(walls):.1f} s")
        print(f"absorption > 0 in every cycle: {all((r.get('absorption') or 0) > 0 for r in rows)}; "
              f"probe loss Δ max {max(r.get('probe_loss_delta') or 0 for r in rows):+.4f} "
              f"(bound {limits['max_probe_loss_delta']}); drift max {max(r.get('drift') or 0 for r in rows):.6f} "
              f"(bound {limits['max_drift']})")
        print(f"{last}: {compared} MLP/embedding tensors compared with the anchor, {differing} differ")
        print(f"gc dropped {len(dropped)} generations' weights "
              f"({last}'s gone: {gone}); materialize {last} in {rebuild_s:.1f} s reproduces its sha256: "
              f"{reproduced and made.get('identical', False)}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
