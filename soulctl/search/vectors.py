"""FAISS indexes shared by the log and the corpora: exact (flat) below IVF_MIN vectors, IVF
above; written atomically, opened memory-mapped (IO_FLAG_MMAP_IFC maps without copying, so
opening one costs milliseconds at a million vectors)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

IVF_MIN = 100_000  # below this an exact index is fast enough (~12 ms at 100k here)


def nlist_for(total: int) -> int:
    return int(min(65536, max(256, 4 * np.sqrt(total))))


SCAN = 30_000  # vectors an IVF search looks at
# vectors the IVF centroids are trained on, at most: 98 MB held while training. 500k
# embedding-shaped vectors, nlist 2828: recall@10 0.965 trained on 65k, 0.970 on 113k (40 a list)
TRAIN_MAX = 65_536


def nprobe_for(nlist: int, total: int) -> int:
    """Lists to probe so a search scans about SCAN vectors: recall@10 ~0.98 at 100k and 1M
    embedding-shaped vectors, a few ms (measured: tests/bench/bench_log.py)."""
    return int(min(nlist, max(64, -(-nlist * SCAN // max(total, 1)))))


def new_index(dim: int, total: int, train_sample: Callable[[int], np.ndarray] | None = None):
    """An empty index for `total` vectors; an IVF one is trained on `train_sample(n)`."""
    import faiss

    if total < IVF_MIN or train_sample is None:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    nlist = nlist_for(total)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.min_points_per_centroid = 8  # TRAIN_MAX gives 16 a list at 1M: chosen, not a fault to print
    index.train(np.ascontiguousarray(train_sample(min(total, 40 * nlist, TRAIN_MAX)), dtype=np.float32))
    return index


def kind(index) -> str:
    import faiss

    return "ivf" if isinstance(index, faiss.IndexIVF) else "flat"


def add(index, ids: np.ndarray, vectors: np.ndarray) -> None:
    for start in range(0, len(ids), 65536):
        index.add_with_ids(np.ascontiguousarray(vectors[start:start + 65536], dtype=np.float32),
                           np.ascontiguousarray(ids[start:start + 65536], dtype=np.int64))


def write(index, path: Path) -> None:
    import faiss

    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


def open_mapped(path: Path):
    import faiss

    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)


def reconstruct(index, ids: np.ndarray) -> np.ndarray:
    """The stored vectors of `ids`. An IVF index gets a hash table from id to slot the first
    time (~70 ms at a million vectors, in memory only)."""
    import faiss

    if isinstance(index, faiss.IndexIVF) and index.direct_map.type != faiss.DirectMap.Hashtable:
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
    return index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64))


def search(index, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores) of the k nearest by inner product (cosine on normalized vectors)."""
    import faiss

    if index is None or index.ntotal == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    k = min(k, index.ntotal)
    params = (faiss.SearchParametersIVF(nprobe=nprobe_for(index.nlist, index.ntotal))
              if isinstance(index, faiss.IndexIVF) else None)
    scores, ids = index.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k, params=params)
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]


def search_many(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores), one row per query, -1 ids where fewer than k exist: one FAISS call."""
    import faiss

    n = len(queries)
    if index is None or index.ntotal == 0 or n == 0:
        return np.full((n, 0), -1, dtype=np.int64), np.zeros((n, 0), dtype=np.float32)
    k = min(k, index.ntotal)
    params = (faiss.SearchParametersIVF(nprobe=nprobe_for(index.nlist, index.ntotal))
              if isinstance(index, faiss.IndexIVF) else None)
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
    return ids, scores
