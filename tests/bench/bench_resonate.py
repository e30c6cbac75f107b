"""`resonate score` at scale: incremental novelty through the log's vector index, beside the
all-pairs rescore (`--rescore`, what every run did before), as whole processes with peak RSS.

A store of N packets (default 100,000; synthetic vectors shaped like real MiniLM embeddings,
as bench_log builds them) is scored once; then 1,000 new packets arrive and are scored again.
Target: the incremental re-score in seconds, not minutes, in bounded memory.

Run: .venv/bin/python tests/bench/bench_resonate.py [--size 100000] [--new 1000] [--rescore]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PHASE = """
import sys, time, json
from pathlib import Path
from soulctl.log.duckdb import DuckDBStore
from soulctl.home.recipe_schemas import ResonateRecipe
from soulctl.evolve.resonate import score
root = Path(sys.argv[1])
store = DuckDBStore(root / "soul.duckdb", root / "index")
start = time.perf_counter()
result = score(store, ResonateRecipe(), role="soul", rescore=sys.argv[2] == "rescore")
print(json.dumps({"scored": result["scored"], "seconds": time.perf_counter() - start}))
"""


def phase(root: Path, mode: str) -> tuple[dict, float, int]:
    import json

    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", PHASE, str(root), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(err.decode()[-1500:])
    record = out.decode().strip().splitlines()[-1]  # anything a library printed comes before
    return json.loads(record), time.perf_counter() - start, usage.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--new", type=int, default=1000)
    ap.add_argument("--rescore", action="store_true", help="also time the all-pairs rescore")
    args = ap.parse_args()

    import numpy as np

    from soulctl.embed import Embedder, bundled_model_dir
    from soulctl.log import NewPacket
    from soulctl.log.duckdb import DuckDBStore
    from tests.bench.bench_log import realistic_vectors, sentences

    embedder = Embedder(bundled_model_dir())
    base = embedder.encode(sentences(2000, seed=2))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="soulctl-bench-resonate-") as tmp:
        root = Path(tmp)
        store = DuckDBStore(root / "soul.duckdb", root / "index")
        total = args.size + args.new
        vectors = realistic_vectors(base, total, rng)
        texts = sentences(total, seed=3)

        def load(lo: int, hi: int, index: bool) -> None:
            for s in range(lo, hi, 50_000):
                e = min(hi, s + 50_000)
                batch = [NewPacket(prose=t, role="soul", session=f"s{(s + i) // 40}")
                         for i, t in enumerate(texts[s:e])]
                store.add(batch, vectors[s:e], embedder.model_id, index=index)

        t = time.perf_counter()
        load(0, args.size, index=False)
        store.reindex()
        print(f"{args.size} packets loaded and indexed in {time.perf_counter() - t:.0f} s")
        print(f"{'run':44s} {'scored':>8s} {'wall':>9s} {'peak RSS':>9s}")
        first, wall, rss = phase(root, "incremental")
        print(f"{'first score (every packet new)':44s} {first['scored']:8d} {wall:8.1f}s {rss / 1024:7.0f} MiB")
        load(args.size, total, index=True)
        again, wall, rss = phase(root, "incremental")
        print(f"{f'incremental, after {args.new} new packets':44s} {again['scored']:8d} {wall:8.1f}s "
              f"{rss / 1024:7.0f} MiB")
        if args.rescore:
            full, wall, rss = phase(root, "rescore")
            print(f"{'--rescore (all-pairs, as before)':44s} {full['scored']:8d} {wall:8.1f}s {rss / 1024:7.0f} MiB")


if __name__ == "__main__":
    main()
