"""FAISS index files extended as a stream (search/vectorfile.py): the bytes must be the very ones
FAISS writes for the same index built in memory, for every layout the log's index takes."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from soulctl.search import vectorfile

D = 16


def passes(ids, vecs, size):
    """A fresh pass over (ids, vectors) in chunks of `size`, each time it is called."""
    return lambda: ((ids[i:i + size], vecs[i:i + size]) for i in range(0, len(ids), size))


def data(n, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, D)).astype(np.float32)


def trained_ivf(nlist=20):
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(D), D, nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(data(40 * nlist, seed=9))
    return index


def test_an_exact_index_extended_is_the_one_faiss_writes(tmp_path):
    old, new = data(100, 1), data(55, 2)
    ref = faiss.IndexIDMap2(faiss.IndexFlatIP(D))
    ref.add_with_ids(old, np.arange(1, 101))
    faiss.write_index(ref, str(tmp_path / "old.faiss"))
    ref.add_with_ids(new, np.arange(200, 255))

    total = vectorfile.extend(tmp_path / "old.faiss", tmp_path / "new.faiss", passes(np.arange(200, 255), new, 37))
    assert total == 155
    assert (tmp_path / "new.faiss").read_bytes() == faiss.serialize_index(ref).tobytes()
    assert vectorfile.kind(tmp_path / "new.faiss") == "flat"


def test_an_empty_exact_index_is_started_from_nothing(tmp_path):
    vecs = data(30, 3)
    ref = faiss.IndexIDMap2(faiss.IndexFlatIP(D))
    ref.add_with_ids(vecs, np.arange(30))
    vectorfile.extend(None, tmp_path / "i.faiss", passes(np.arange(30), vecs, 7), dim=D)
    assert (tmp_path / "i.faiss").read_bytes() == faiss.serialize_index(ref).tobytes()


def test_an_ivf_index_trained_then_extended_is_the_one_faiss_writes(tmp_path):
    vecs, ids = data(3000, 4), np.arange(3000) * 3
    trained = trained_ivf()
    ref = faiss.clone_index(trained)
    assert vectorfile.extend(None, tmp_path / "a.faiss", passes(ids[:2000], vecs[:2000], 301), trained=trained) == 2000
    ref.add_with_ids(vecs[:2000], ids[:2000])
    assert (tmp_path / "a.faiss").read_bytes() == faiss.serialize_index(ref).tobytes()

    assert vectorfile.extend(tmp_path / "a.faiss", tmp_path / "b.faiss", passes(ids[2000:], vecs[2000:], 77)) == 3000
    ref.add_with_ids(vecs[2000:], ids[2000:])
    assert (tmp_path / "b.faiss").read_bytes() == faiss.serialize_index(ref).tobytes()
    assert vectorfile.kind(tmp_path / "b.faiss") == "ivf"


def test_an_ivf_file_with_sparse_lists_is_read_and_searched_alike(tmp_path):
    vecs, ids = data(50, 5), np.arange(50)
    index = trained_ivf()
    index.add_with_ids(vecs[:3], ids[:3])  # 3 of 20 lists filled: FAISS writes them sparse
    faiss.write_index(index, str(tmp_path / "s.faiss"))
    vectorfile.extend(tmp_path / "s.faiss", tmp_path / "t.faiss", passes(ids[3:], vecs[3:], 8))
    index.add_with_ids(vecs[3:], ids[3:])
    read = faiss.read_index(str(tmp_path / "t.faiss"))
    read.nprobe = index.nprobe = 20
    assert read.ntotal == 50
    assert np.array_equal(read.search(vecs[:5], 5)[1], index.search(vecs[:5], 5)[1])


def test_vectors_of_another_width_are_refused(tmp_path):
    with pytest.raises(ValueError, match="width 16"):
        vectorfile.extend(None, tmp_path / "w.faiss", passes(np.arange(3), np.zeros((3, 8), np.float32), 2), dim=D)


def test_a_file_of_another_kind_is_unreadable_not_misread(tmp_path):
    hnsw = faiss.IndexHNSWFlat(D, 8)
    faiss.write_index(hnsw, str(tmp_path / "h.faiss"))
    with pytest.raises(vectorfile.Unreadable):
        vectorfile.extend(tmp_path / "h.faiss", tmp_path / "o.faiss", passes(np.arange(1), data(1, 6), 1))


def test_the_training_sample_is_the_same_vectors_however_they_are_read():
    vecs, ids = data(5000, 7), np.arange(1, 5001)
    one = vectorfile.sample(passes(ids, vecs, 64), 1000, 5000, D)
    other = vectorfile.sample(passes(ids, vecs, 999), 1000, 5000, D)
    assert np.array_equal(one, other) and 800 < len(one) < 1200  # about n, picked by each seq's hash
    assert len(vectorfile.sample(passes(ids, vecs, 64), 10_000, 5000, D)) == 5000  # n past the total: all
