"""Bifocal log benchmarks, printed beside the raw libraries doing the same work in the same run.

1. Ingest: `soulctl log add --jsonl` (a whole process) vs a bare sentence-transformers script
   encoding the same texts (a whole process); and in-process, Embedder + store.add vs
   SentenceTransformer.encode. Target ratio >= 0.85.
2. Search latency (median) at 100k and 1M packets: semantic, keyword, hybrid; recall@10 of the
   vector index against exact search. Targets at 1M: semantic <= 20 ms, hybrid <= 50 ms,
   recall >= 0.95. Packets are synthetic: vectors mixed from real MiniLM embeddings (shaped like
   real ones, not iid noise) and prose from a word list, loaded through store.add.

Run: .venv/bin/python tests/bench/bench_log.py [--ingest N] [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

WORDS = ("river mountain sediment valley committee budget engineer bicycle kitchen ceiling "
         "chess timetable recipe parking report concert software release heron marsh fish "
         "weather garden library window rain train platform weekend gravity planet orbit "
         "language summary meeting prime number map territory sandcastle tide lake forest "
         "bridge harbour violin poem letter memory dream notebook anchor generation").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 30))) + "." for _ in range(n)]


def wall(cmd: list[str], stdin: str | None = None, env=None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, input=stdin, text=True, capture_output=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed: {proc.stderr[-800:]}")
    return time.perf_counter() - start


def make_home(tmp: Path) -> Path:
    home = tmp / "home"
    gen0 = os.environ.get("SOULCTL_BENCH_GEN0")  # reuse a generation-0 directory if given
    args = [sys.executable, "-m", "soulctl", "init", str(home)] + (["--base", gen0] if gen0 else [])
    wall(args)
    return home


def bench_ingest(n: int, tmp: Path) -> None:
    from soulctl.embed import bundled_model_dir

    texts = sentences(n, seed=1)
    jsonl = "\n".join(json.dumps({"prose": t}) for t in texts) + "\n"
    home = make_home(tmp)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    ours = wall([sys.executable, "-m", "soulctl", "log", "add", "--jsonl", "--session", "bench",
                 "--home", str(home)], jsonl, env)
    script = ("import sys, json\nfrom sentence_transformers import SentenceTransformer\n"
              f"m = SentenceTransformer({str(bundled_model_dir())!r}, device='cpu')\n"
              "texts = [json.loads(l)['prose'] for l in sys.stdin if l.strip()]\n"
              "m.encode(texts, batch_size=64, normalize_embeddings=True)\n")
    bare = wall([sys.executable, "-c", script], jsonl, env)
    print(f"ingest {n} packets, whole process:")
    print(f"  soulctl log add --jsonl       {n / ours:8.1f} packets/s  ({ours:.1f} s)")
    print(f"  bare sentence-transformers    {n / bare:8.1f} texts/s    ({bare:.1f} s)")
    print(f"  ratio                         {bare / ours:8.2f}  (target >= 0.85)")

    # in-process, steady state: models loaded, no start-up on either side
    from sentence_transformers import SentenceTransformer

    from soulctl.embed import Embedder
    from soulctl.home import Home
    from soulctl.log import NewPacket, open_store
    from soulctl.log.ingest import add_packets

    st = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    st.encode(texts[:64])
    start = time.perf_counter()
    st.encode(texts, batch_size=64, normalize_embeddings=True)
    bare_ip = time.perf_counter() - start
    h = Home(home)
    embedder = Embedder(bundled_model_dir())
    embedder.encode(texts[:64])
    packets = [NewPacket(prose=t, session="bench2") for t in texts]
    start = time.perf_counter()
    for _ in add_packets(open_store(h), embedder, packets):
        pass
    ours_ip = time.perf_counter() - start
    print(f"ingest {n} packets, in process (models loaded):")
    print(f"  Embedder + store.add          {n / ours_ip:8.1f} packets/s")
    print(f"  SentenceTransformer.encode    {n / bare_ip:8.1f} texts/s")
    print(f"  ratio                         {bare_ip / ours_ip:8.2f}  (target >= 0.85)")


def realistic_vectors(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Mixtures of real embeddings plus noise: the shape of a real embedding cloud."""
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        i = rng.integers(0, len(base), m)
        j = rng.integers(0, len(base), m)
        w = rng.uniform(0.5, 1.0, (m, 1)).astype(np.float32)
        v = w * base[i] + (1 - w) * base[j] + 0.05 * rng.standard_normal((m, base.shape[1])).astype(np.float32)
        out[start:start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def bench_search(sizes: list[int], tmp: Path) -> None:
    import faiss

    from soulctl.embed import Embedder, bundled_model_dir
    from soulctl.log.search import ranked
    from soulctl.log import Filters, NewPacket
    from soulctl.log.duckdb import DuckDBStore
    from soulctl.log.search import search

    embedder = Embedder(bundled_model_dir())
    base_texts = sentences(3000, seed=2)
    base = embedder.encode(base_texts)
    rng = np.random.default_rng(0)
    query_texts = [" ".join(random.Random(i).sample(WORDS, 6)) for i in range(100)]
    query_vecs = embedder.encode(query_texts)
    for size in sizes:
        root = tmp / f"store-{size}"
        store = DuckDBStore(root / "soul.duckdb", root / "index")
        vectors = realistic_vectors(base, size, rng)
        texts = sentences(size, seed=size)
        start = time.perf_counter()
        for s in range(0, size, 50_000):
            batch = [NewPacket(prose=t, session=f"s{(s + i) % 50}") for i, t in enumerate(texts[s:s + 50_000])]
            store.add(batch, vectors[s:s + 50_000], embedder.model_id, index=False)
        load = time.perf_counter() - start
        start = time.perf_counter()
        info = store.reindex()
        build = time.perf_counter() - start
        print(f"{size} packets: load {load:.1f} s, index build {build:.1f} s ({info['vector_kind']})")

        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(vectors)
        _, truth = exact.search(query_vecs, 10)
        flat_times = []
        for q in query_vecs[:20]:
            t0 = time.perf_counter()
            exact.search(q.reshape(1, -1), 10)
            flat_times.append(time.perf_counter() - t0)

        f = Filters()
        timings = {"semantic": [], "keyword": [], "hybrid": [], "hybrid+embed": []}
        recalls = []
        for text, vec, gt in zip(query_texts, query_vecs, truth):
            t0 = time.perf_counter()
            hits = ranked(store, vec, None, 10, f)
            timings["semantic"].append(time.perf_counter() - t0)
            got = {p.seq for p, _ in hits}
            recalls.append(len(got & {int(g) + 1 for g in gt}) / 10)  # seq = row + 1
            t0 = time.perf_counter()
            ranked(store, None, text, 10, f)
            timings["keyword"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            search(store, embedder, text, 10, "hybrid", f, query_vector=vec)
            timings["hybrid"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            search(store, embedder, text, 10, "hybrid", f)
            timings["hybrid+embed"].append(time.perf_counter() - t0)
        med = {k: 1000 * statistics.median(v) for k, v in timings.items()}
        print(f"  median latency: semantic {med['semantic']:.1f} ms (target <= 20 at 1M), "
              f"keyword {med['keyword']:.1f} ms, hybrid {med['hybrid']:.1f} ms (target <= 50 at 1M), "
              f"hybrid incl. query embedding {med['hybrid+embed']:.1f} ms")
        print(f"  raw FAISS exact search {1000 * statistics.median(flat_times):.1f} ms; "
              f"recall@10 of the index vs exact: {np.mean(recalls):.3f} (target >= 0.95)")
        shutil.rmtree(root)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ingest", type=int, default=2000)
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.ingest:
            bench_ingest(args.ingest, Path(tmp))
        sizes = [int(s) for s in args.sizes.split(",") if s]
        if sizes:
            bench_search(sizes, Path(tmp))


if __name__ == "__main__":
    main()
