"""`log import` of a synthetic ChatGPT export, beside the bare encoder doing the same embedding
in the same run: peak RSS (whole process) and rate, at each size. Targets: peak ≤ the bare
encoder's peak + 300 MiB, flat (±10%) between sizes; rate ≥ 0.8× the bare encoder's.

The export is written as ChatGPT writes it (an array of conversations, each a `mapping` of
nodes with a branch ending at `current_node`, some edited, so alternates exist), prose from a
word list; the bare encoder reads the same turns' texts from a file and encodes them in
batches of 512 (as the import writes), so neither holds the whole set of vectors.

Run: .venv/bin/python tests/bench/bench_import.py [--sizes 20,200] [--bare-turns 20000] (MB)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_log import WORDS, make_home  # noqa: E402


def export(path: Path, megabytes: float, texts: Path, seed: int = 0) -> int:
    """A ChatGPT conversations.json of about `megabytes`; the imported turns' texts, one a
    line, to `texts`. Returns the number of turns imported."""
    rng = random.Random(seed)
    limit, written, turns, n = megabytes * 1e6, 0, 0, 0
    with open(path, "w") as out, open(texts, "w") as lines:
        out.write("[")
        while written < limit:
            mapping, parent, t = {}, None, 1_700_000_000 + n * 3600
            for j in range(rng.randint(6, 30)):
                nid = f"c{n}-m{j}"
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))) + "."
                mapping[nid] = {"id": nid, "parent": parent, "children": [], "message": {
                    "id": nid, "author": {"role": "user" if j % 2 == 0 else "assistant"}, "create_time": t + j,
                    "content": {"content_type": "text", "parts": [text]}}}
                if parent:
                    mapping[parent]["children"].append(nid)
                parent = nid
                lines.write(text + "\n")
                turns += 1
            if n % 5 == 0:  # an edit: a branch off the first turn, not current
                alt = f"c{n}-alt"
                mapping[alt] = {"id": alt, "parent": f"c{n}-m0", "children": [], "message": {
                    "id": alt, "author": {"role": "assistant"}, "create_time": t,
                    "content": {"content_type": "text", "parts": ["an earlier answer"]}}}
                mapping[f"c{n}-m0"]["children"].append(alt)
            body = json.dumps({"title": f"c{n}", "create_time": t, "id": f"c{n}", "current_node": parent,
                               "mapping": mapping})
            out.write(("," if n else "") + body)
            written += len(body) + 1
            n += 1
        out.write("]")
    return turns


BARE = """
import resource, sys, time
from sentence_transformers import SentenceTransformer
from soulctl.embed import bundled_model_dir
m = SentenceTransformer(str(bundled_model_dir()), device="cpu")
batch, n, start = [], 0, time.perf_counter()
limit = int(sys.argv[2])
for line in open(sys.argv[1]):
    if n + len(batch) >= limit:
        break
    batch.append(line.rstrip("\\n"))
    if len(batch) == 512:
        m.encode(batch, batch_size=64, normalize_embeddings=True); n += len(batch); batch = []
if batch:
    m.encode(batch, batch_size=64, normalize_embeddings=True); n += len(batch)
print(n, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_of(cmd: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB of the process) via a wrapper that waits on it."""
    wrapper = ("import resource, subprocess, sys, time\nt = time.perf_counter()\n"
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "if p.returncode: sys.exit(p.stderr[-800:])\n"
               "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-1500:])
    seconds, kib = out.stdout.split()
    return float(seconds), int(kib)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20,200", help="export sizes in MB")
    parser.add_argument("--bare-turns", type=int, default=0,
                        help="the bare encoder embeds at most this many of the turns (0: all); its rate and "
                             "peak do not depend on the count, and at 200 MB all of them take 40 minutes")
    parser.add_argument("--bare-runs", type=int, default=3, help="bare encoder runs per size (the median)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for mb in [float(s) for s in args.sizes.split(",")]:
            source, texts = tmp / f"conversations-{mb:g}.json", tmp / f"texts-{mb:g}.txt"
            turns = export(source, mb, texts)
            home = make_home(tmp / f"h{mb:g}")
            took, peak = peak_of([sys.executable, "-m", "soulctl", "--home", str(home), "log", "import", str(source)])
            runs = []  # the bare encoder's peak varies by ±50 MiB between identical runs: the median
            for _ in range(args.bare_runs):
                bare = subprocess.run([sys.executable, "-c", BARE, str(texts), str(args.bare_turns or turns)],
                                      capture_output=True, text=True, cwd=REPO)
                if bare.returncode:
                    raise SystemExit(bare.stderr[-1500:])
                n, bare_took, bare_peak = bare.stdout.split()
                runs.append((int(n) / float(bare_took), int(bare_peak)))
            bare_rate = statistics.median(r for r, _ in runs)
            bare_peak = statistics.median(p for _, p in runs)
            n = f"{n} ({', '.join(f'{p / 1024:.0f}' for _, p in runs)} MiB in {len(runs)} runs)"
            rows.append((mb, turns, took, peak, bare_rate, int(bare_peak)))
            print(f"{mb:g} MB: {turns} turns; import {turns / took:.0f} turns/s, peak {peak / 1024:.0f} MiB; "
                  f"bare encoder {bare_rate:.0f} texts/s on {n} of them (encoding only), peak "
                  f"{int(bare_peak) / 1024:.0f} MiB", flush=True)
    print(f"\n{'MB':>6s} {'turns':>8s} {'import/s':>9s} {'bare/s':>8s} {'ratio':>6s} {'peak MiB':>9s} "
          f"{'bare MiB':>9s} {'over':>6s}")
    for mb, turns, took, peak, bare_rate, bare_peak in rows:
        print(f"{mb:6g} {turns:8d} {turns / took:9.0f} {bare_rate:8.0f} {turns / took / bare_rate:6.2f} "
              f"{peak / 1024:9.0f} {bare_peak / 1024:9.0f} {(peak - bare_peak) / 1024:+6.0f}")
    print("targets: ratio ≥ 0.8 (the import's whole process against the bare encoding alone), "
          "peak ≤ bare + 300 MiB, flat between sizes")


if __name__ == "__main__":
    main()
