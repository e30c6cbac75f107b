"""Corpus mount benchmarks, printed beside the raw libraries doing the same work in one run.

1. Indexing throughput: `mount add` of a generated Markdown tree (chunks/s, models loaded)
   vs bare SentenceTransformer.encode of the same chunk texts. Target ratio >= 0.8.
2. Mounting a corpus of 100k and 1M chunks (opening its indexes; target <= 50 ms at 1M) and
   median hybrid search latency there (target <= 30 ms at 1M); vectors mixed from real MiniLM
   embeddings, text from a word list.

Run: .venv/bin/python tests/bench/bench_mount.py [--files 300] [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

from bench_log import WORDS, realistic_vectors, sentences  # noqa: E402


def make_tree(root: Path, files: int) -> None:
    rng = random.Random(3)
    for f in range(files):
        path = root / f"topic{f % 20}" / f"note{f}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        parts = [f"# Note {f}\n"]
        for s in range(rng.randint(3, 6)):
            parts.append(f"## Section {s}\n")
            for _ in range(rng.randint(1, 3)):
                parts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 70))) + ".\n")
        path.write_text("\n".join(parts))


def bench_indexing(files: int, tmp: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from soulctl.corpus import mounts
    from soulctl.corpus.chunk import chunk_file
    from soulctl.embed import Embedder, bundled_model_dir
    from soulctl.home import Home

    tree = tmp / "tree"
    make_tree(tree, files)
    home = Home(tmp / "home")
    (tmp / "home" / "corpora").mkdir(parents=True)
    (tmp / "home" / "data").mkdir()
    embedder = Embedder(bundled_model_dir())
    embedder.encode(["warm up"])
    start = time.perf_counter()
    report = mounts.add(home, "bench", tree, embedder)
    ours = time.perf_counter() - start
    texts = [c.embed_text() for p in sorted(tree.rglob("*.md"))
             for c in chunk_file(p.relative_to(tree).as_posix(), p.read_text())]
    st = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    st.encode(texts[:32])
    start = time.perf_counter()
    st.encode(texts, batch_size=64, normalize_embeddings=True)
    bare = time.perf_counter() - start
    print(f"indexing {report.files} files, {report.chunks} chunks (models loaded):")
    print(f"  soulctl mount add             {report.chunks / ours:8.1f} chunks/s ({ours:.1f} s)")
    print(f"  bare SentenceTransformer      {len(texts) / bare:8.1f} texts/s  ({bare:.1f} s)")
    print(f"  ratio                         {bare / ours:8.2f}  (target >= 0.8)")


def bench_mount(sizes: list[int], tmp: Path) -> None:
    from soulctl.corpus import index as ix
    from soulctl.corpus.chunk import Chunk
    from soulctl.corpus.mounts import Wardrobe
    from soulctl.embed import Embedder, bundled_model_dir
    from soulctl.home import Home

    embedder = Embedder(bundled_model_dir())
    base = embedder.encode(sentences(3000, seed=2))
    queries = [" ".join(random.Random(i).sample(WORDS, 5)) for i in range(50)]
    qvecs = embedder.encode(queries)
    rng = np.random.default_rng(1)
    for size in sizes:
        root = tmp / f"home-{size}"
        (root / "corpora").mkdir(parents=True)
        (root / "data").mkdir()
        home = Home(root)
        texts = sentences(size, seed=size)
        chunks = [Chunk(f"doc{i // 20}.md", (i % 20) * 5 + 1, (i % 20) * 5 + 5, f"Section {i % 20}", t)
                  for i, t in enumerate(texts)]
        start = time.perf_counter()
        table = ix.ChunkTable.build(chunks, ["0" * 64] * size, realistic_vectors(base, size, rng))
        manifest = {"name": "big", "source": "synthetic", "created_at": "", "updated_at": "",
                    "chunker": "synthetic", "embedder": {"model_id": embedder.model_id, "dim": 384},
                    "files": {}, "skipped": [], "counts": {"files": size // 20, "chunks": size, "skipped": {}}}
        ix.write_corpus(root / "corpora" / "big", table, manifest, 384)
        build = time.perf_counter() - start
        del table, chunks, texts
        # mount: a process that opens the corpus for the first time
        opens = []
        for _ in range(5):
            t0 = time.perf_counter()
            ix.MountedCorpus("big", root / "corpora" / "big")
            opens.append(time.perf_counter() - t0)
        wardrobe = Wardrobe(home)
        (root / "data" / "mounts.json").write_text('{"mounted": ["big"]}')
        wardrobe.search("warm up", embedder, 10, query_vector=qvecs[0])
        t0 = time.perf_counter()
        for _ in range(100):
            wardrobe.corpus("big")  # switching back to an opened outfit
        switch = (time.perf_counter() - t0) / 100
        lat, lat_embed = [], []
        for q, v in zip(queries, qvecs):
            t0 = time.perf_counter()
            wardrobe.search(q, embedder, 10, query_vector=v)
            lat.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            wardrobe.search(q, embedder, 10)
            lat_embed.append(time.perf_counter() - t0)
        print(f"{size} chunks: built in {build:.0f} s; mount (open indexes) median "
              f"{1000 * statistics.median(opens):.1f} ms (target <= 50 ms at 1M); "
              f"switch to an opened outfit {1000 * switch:.2f} ms")
        print(f"  hybrid search median {1000 * statistics.median(lat):.1f} ms (target <= 30 ms at 1M), "
              f"{1000 * statistics.median(lat_embed):.1f} ms with query embedding")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.files:
            bench_indexing(args.files, Path(tmp))
        sizes = [int(s) for s in args.sizes.split(",") if s]
        if sizes:
            bench_mount(sizes, Path(tmp))


if __name__ == "__main__":
    main()
