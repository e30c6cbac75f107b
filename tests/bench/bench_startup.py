"""Start-up benchmark: `soulctl --help` (and two light commands) beside `python -c "import typer"`.

Run: .venv/bin/python tests/bench/bench_startup.py [runs]
Prints median wall times and the ratio; no assertion (speed is measured, not asserted).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    py = sys.executable
    baseline = wall([py, "-c", "import typer"], runs)
    print(f"python -c 'import typer'           {baseline * 1000:7.1f} ms  (baseline)")
    for label, args in (("soulctl --help", ["--help"]),
                        ("soulctl budget (preset)", ["budget", "--model", "mistral-large-2407", "--ram", "1TiB"]),
                        ("soulctl budget --list-presets", ["budget", "--list-presets"])):
        t = wall([py, "-m", "soulctl", *args], runs)
        print(f"{label:34s} {t * 1000:7.1f} ms  ratio {t / baseline:4.2f}x")


if __name__ == "__main__":
    main()
