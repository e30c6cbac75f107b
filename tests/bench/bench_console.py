"""The console's pages on a big home: 100k packets and 30 generations, served by a real
`soulctl serve`, each page fetched over loopback. Target: every page ≤ 300 ms.

The home: `soulctl init`, then 100k packets written through the store (users and the soul's
replies in 500 sessions, prose from a word list, embedding-shaped vectors, half the replies
scored), 29 generations after generation 0 each with its cycle's record in the log (their
weights hard links of generation 0's: the pages read lineage, never weights), and 30 notebook
versions. Each page: the first fetch (cold: the resonance map is computed then), then the
median of 5; then the resonance page right after a reply is marked (median of 3).

Run: .venv/bin/python tests/bench/bench_console.py [--packets 100000] [--generations 30]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_log import make_home, realistic_vectors, sentences  # noqa: E402

PAGES = ("/", "/lineage", "/lineage/gen-0015", "/memory", "/memory?q=garden+river+morning", "/resonance",
         "/chat", "/packet/{packet}")
TARGET_MS = 300


def fill(home: Path, packets: int, generations: int) -> str:
    """The big home's log, generations and notebook; returns one packet's id."""
    from soulctl.embed import Embedder, bundled_model_dir
    from soulctl.generations import build_generation, now_iso, set_current
    from soulctl.home import Home
    from soulctl.log import NewPacket
    from soulctl.soul import Soul

    soul = Soul(Home(home))
    store = soul.store
    embedder = Embedder(bundled_model_dir())
    vectors = realistic_vectors(embedder.encode(sentences(2000, seed=3)), packets, np.random.default_rng(0))
    texts = sentences(packets, seed=4)
    rng = random.Random(0)
    for s in range(0, packets, 5000):
        batch = [NewPacket(prose=t, role="user" if (s + i) % 2 == 0 else "soul", session=f"s{(s + i) // 200}")
                 for i, t in enumerate(texts[s:s + 5000])]
        written = store.add(batch, vectors[s:s + 5000], embedder.model_id, index=False)
        store.mark_many([(p.id, round(rng.random(), 3), "combined") for p in written
                         if p.role == "soul" and rng.random() < 0.5])
    store.reindex()
    anchor = home / "generations" / "gen-0000"
    for n in range(1, generations):
        gid, parent = f"gen-{n:04d}", f"gen-{n - 1:04d}"
        layers = [{"adapter": f"ad-{k:016x}", "weight": 1.0, "density": 0.5} for k in range(n)]
        build_generation(soul.home, gid, lambda tmp: _link(anchor, tmp),
                         {"parent": parent, "anchor": "gen-0000", "layers": layers, "created_at": now_iso(),
                          "drift": {"overall": 0.0004 * n}})
        record = {"generation": gid, "parent": parent, "status": "accepted", "reason": f"{gid} passed",
                  "drift": 0.0004 * n, "probe_loss_delta": 0.0015 * n, "absorption": 0.03 + 0.001 * rng.random(),
                  "buffer": f"buf-{n}"}
        prose = f"evolve: {gid} from {parent} on buf-{n}"
        store.add([NewPacket(prose=prose, role="system", session="evolve", meta={"evolve": record})],
                  embedder.encode([prose]), embedder.model_id)
    set_current(soul.home, f"gen-{generations - 1:04d}")
    lines: list[str] = []
    for v in range(30):
        lines.append(f"- fact {v}: {texts[v][:60]}")
        store.memory_add("notebook", "\n".join(lines[-12:]), "soul", f"rewrite {v}")
    some = next(iter(store.list(_soul_filter(), limit=1))).id
    soul.close()
    return some


def _soul_filter():
    from soulctl.log import Filters

    return Filters(role="soul")


def _link(src: Path, dst: Path) -> None:
    for f in src.iterdir():
        if f.name != "lineage.json" and f.is_file():
            os.link(f, dst / f.name)


def fetch(url: str) -> tuple[int, float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
        status = r.status
    return status, 1000 * (time.perf_counter() - start), len(body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--generations", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        t = time.perf_counter()
        home = make_home(Path(tmp))
        packet = fill(home, args.packets, args.generations)
        print(f"home: {args.packets:,} packets, {args.generations} generations, built in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        log = open(Path(tmp) / "serve.log", "w+")
        proc = subprocess.Popen([sys.executable, "-m", "soulctl", "serve", "--home", str(home), "--port", "0"],
                                stdout=subprocess.DEVNULL, stderr=log, text=True)
        try:
            base = None
            for _ in range(600):
                log.seek(0)
                if found := re.search(r"at (http://127\.0\.0\.1:\d+)/v1", log.read()):
                    base = found.group(1)
                    break
                time.sleep(0.5)
            assert base, "serve did not start"
            print(f"{'page':36s} {'cold':>9} {'median':>9} {'size':>9}")
            worst = 0.0
            for path in PAGES:
                url = base + path.format(packet=packet)
                status, cold, size = fetch(url)
                assert status == 200, (path, status)
                times = [fetch(url)[1] for _ in range(5)]
                med = statistics.median(times)
                worst = max(worst, med)
                print(f"{path.format(packet=packet)[:36]:36s} {cold:7.0f}ms {med:7.0f}ms {size / 1024:7.0f}KiB", flush=True)
            print(f"slowest page: {worst:.0f} ms (target <= {TARGET_MS} ms, median of 5 after a cold fetch)")
            after = []  # a reply marked (as `resonate mark` does), then the map: recoloured, not recomputed whole
            for score in ("0.91", "0.92", "0.93"):
                subprocess.run([sys.executable, "-m", "soulctl", "--home", str(home), "resonate", "mark", packet,
                                score], check=True, capture_output=True)
                after.append(fetch(base + "/resonance")[1])
            print(f"/resonance after a mark: {statistics.median(after):.0f} ms (median of 3)")
        finally:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()
