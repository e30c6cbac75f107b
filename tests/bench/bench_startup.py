"""Start-up benchmark: whole `soulctl` processes, as a shell script calls them.

1. `soulctl --help` and two budget calls beside `python -c "import typer"`.
2. In a home with N packets (default 5,900): cold-process `log search` (hybrid and semantic:
   the light path embeds the query on numpy), beside `log search --keyword`, `log ls` and
   `log add` of one line, with each process's peak RSS. Target: search median <= 1 s.
   `--runtime torch` measures the same commands with the embedder on torch, for comparison.

Run: .venv/bin/python tests/bench/bench_startup.py [--runs 7] [--packets 5900] [--runtime auto]
Prints medians and ratios; no assertion (speed is measured, not asserted).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.bench_log import WORDS  # noqa: E402


def run(cmd: list[str], env=None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, from wait4's rusage) of one whole process."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{cmd[2:7]} exited {proc.returncode}: {err.read().decode()[-600:]}")
    return wall, usage.ru_maxrss


def measure(cmds: dict[str, list[str]], runs: int, env) -> dict[str, tuple[float, int]]:
    """Interleaved runs (each round runs every command once), so drift hits all alike."""
    walls: dict[str, list[float]] = {name: [] for name in cmds}
    rss: dict[str, int] = {name: 0 for name in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            wall, peak = run(cmd, env)
            walls[name].append(wall)
            rss[name] = max(rss[name], peak)
    return {name: (statistics.median(w), rss[name]) for name, w in walls.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--packets", type=int, default=5900)
    ap.add_argument("--runtime", default="auto", choices=["numpy", "torch", "auto"])
    args = ap.parse_args()
    py = sys.executable
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    base = measure({"import typer": [py, "-c", "import typer"]}, args.runs, env)["import typer"][0]
    print(f"{'python -c import typer':36s} {base * 1000:7.0f} ms  (baseline)")
    light = {"--help": ["--help"], "budget (preset)": ["budget", "--model", "mistral-large-2407", "--ram", "1TiB"],
             "budget --list-presets": ["budget", "--list-presets"]}
    for label, (t, _) in measure({k: [py, "-m", "soulctl", *v] for k, v in light.items()}, args.runs, env).items():
        print(f"soulctl {label:28s} {t * 1000:7.0f} ms  ratio {t / base:4.2f}x")

    with tempfile.TemporaryDirectory(prefix="soulctl-bench-startup-") as tmp:
        home = Path(tmp) / "home"
        start = time.perf_counter()
        subprocess.run([py, "-m", "soulctl", "init", str(home)], check=True, capture_output=True, env=env)
        rng = random.Random(0)
        lines = "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
                          for _ in range(args.packets)) + "\n"
        loaded = subprocess.run([py, "-m", "soulctl", "--home", str(home), "log", "add"], input=lines,
                                text=True, capture_output=True, env=env)
        assert loaded.returncode == 0, loaded.stderr
        config = home / "soul.yaml"
        config.write_text(config.read_text().replace("runtime: auto", f"runtime: {args.runtime}", 1))
        print(f"\nhome with {args.packets} packets ready in {time.perf_counter() - start:.0f} s; "
              f"embedder runtime {args.runtime}")
        q = "when did we decide on the schema for the river report"
        log = [py, "-m", "soulctl", "--home", str(home), "log"]
        cmds = {"log ls": [*log, "ls", "-n", "20"],
                "log search --keyword": [*log, "search", "--keyword", q],
                "log search --semantic": [*log, "search", "--semantic", q],
                "log search (hybrid)": [*log, "search", q],
                "log add (one line)": [*log, "add", "the heron waits by the marsh at dawn"]}
        results = measure(cmds, args.runs, env)
        ls = results["log ls"][0]
        print(f"{'command':36s} {'median':>8s}  {'vs log ls':>9s}  {'peak RSS':>9s}")
        for name, (t, peak) in results.items():
            print(f"soulctl {name:28s} {t * 1000:6.0f} ms  {t / ls:8.2f}x  {peak / 1024:6.0f} MiB")


if __name__ == "__main__":
    main()
