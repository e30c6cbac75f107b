"""The log's derived indexes and per-turn writes, through the store itself (real DuckDB, FAISS,
tantivy and MiniLM): the vector tail, writes that index in the background, and the cached
self-definition and notebook."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import soulctl
from test_log import corpus_lines

from soulctl.log.search import ranked

from soulctl.errors import InvalidInput
from soulctl.log import Filters


@pytest.fixture
def parts(home):
    from soulctl.embed import embedder_for
    from soulctl.home import Home
    from soulctl.log import open_store

    h = Home(home)
    return h, open_store(h), embedder_for(h.config, h.root)


def packets(lines, session="t"):
    from soulctl.log import NewPacket

    return [NewPacket(prose=line, session=session) for line in lines]


def exact_ranking(store, vector, k):
    """Every packet's embedding from the database, ranked by inner product."""
    _, rows = store.sql("SELECT seq, embedding FROM packets ORDER BY seq")
    seqs = np.array([r[0] for r in rows])
    scores = np.array([r[1] for r in rows], dtype=np.float32) @ vector
    return seqs[np.argsort(-scores, kind="stable")[:k]].tolist()


def semantic(store, vector, k):
    return [p.seq for p, _ in ranked(store, vector, None, k, Filters())]


def test_new_packets_are_searched_from_the_tail_then_folded_in(parts):
    home, store, embedder = parts
    lines = corpus_lines(60)
    store.add(packets(lines[:40]), embedder.encode(lines[:40]), embedder.model_id)
    state = store.index.state()
    assert not store.index.has_vectors()  # below the lag limit: everything is in the tail
    assert (state.tail_rows, state.tail_seq, state.log_seq) == (40, 40, 40)

    query = embedder.encode(["a bird standing still in the wetland before catching fish"])[0]
    assert semantic(store, query, 10) == exact_ranking(store, query, 10)

    store.reindex()  # the tail folded into a FAISS index
    state = store.index.state()
    assert store.index.has_vectors() and (state.vector_seq, state.tail_rows) == (40, 0)
    assert not (home.data / "index" / "log" / "tail.f32").exists()

    for line in lines[40:]:  # per-turn writes: committed first, indexed in the background
        written = store.add_then_index(packets([line]), embedder.encode([line]), embedder.model_id)
        assert store.get(written[0].id).prose == line  # committed when add_then_index returns
    store.settle()
    state = store.index.state()
    assert (state.vector_seq, state.tail_rows, state.tail_seq, state.keyword_seq) == (40, 20, 60, 60)
    newest = embedder.encode([lines[-1]])[0]
    assert semantic(store, newest, 1) == [60]
    assert semantic(store, query, 10) == exact_ranking(store, query, 10)


def test_a_torn_tail_falls_back_to_the_database_and_is_rebuilt(parts):
    home, store, embedder = parts
    lines = corpus_lines(30, seed=5)
    store.add(packets(lines[:20]), embedder.encode(lines[:20]), embedder.model_id)
    store.reindex()
    store.add(packets(lines[20:29]), embedder.encode(lines[20:29]), embedder.model_id)
    tail = home.data / "index" / "log" / "tail.f32"
    with open(tail, "r+b") as fh:  # as if the machine died mid-append
        fh.truncate(tail.stat().st_size - 1000)
    query = embedder.encode([lines[25]])[0]
    assert semantic(store, query, 1) == [26]  # found in the database instead
    assert semantic(store, query, 12) == exact_ranking(store, query, 12)

    store.add(packets(lines[29:]), embedder.encode(lines[29:]), embedder.model_id)
    state = store.index.state()
    assert (state.tail_rows, state.tail_seq) == (10, 30)  # rebuilt from the index's reach
    assert tail.stat().st_size == 10 * 384 * 4
    assert semantic(store, query, 12) == exact_ranking(store, query, 12)


def test_a_refused_background_write_raises_and_leaves_nothing(parts):
    home, store, embedder = parts
    store.add(packets(["first"]), embedder.encode(["first"]), embedder.model_id)
    with pytest.raises(InvalidInput, match="vectors were made by"):
        store.add_then_index(packets(["second"]), embedder.encode(["second"]), "another-model@123")
    assert store.count() == 1
    # the lock was released: the next write (from this process and another) goes through
    store.add_then_index(packets(["third"]), embedder.encode(["third"]), embedder.model_id)
    assert soulctl("log", "add", "fourth", "--home", home.root).code == 0
    assert [p.prose for p in store.list(Filters(), newest_first=False)] == ["first", "third", "fourth"]


def test_memory_is_cached_until_any_process_writes_it(parts):
    from soulctl.memory import notebook as nb
    from soulctl.soul import Soul

    home, _, embedder = parts
    soul = Soul(home)
    store = soul.store
    assert nb.current(soul, "notebook")["text"] == ""
    nb.write(soul, "notebook", "rivers matter", "user", None)
    assert nb.current(soul, "notebook")["text"] == "rivers matter"  # own write seen
    latest = store.memory_latest(nb.KINDS)
    latest["notebook"]["text"] = "scribbled"  # the caller's copy, not the cache
    assert store.memory_latest(nb.KINDS)["notebook"]["text"] == "rivers matter"
    result = soulctl("notebook", "set", "--home", home.root, input="the sea matters more\n")
    assert result.code == 0, result
    assert nb.current(soul, "notebook")["text"] == "the sea matters more"  # another's seen
    assert soulctl("notebook", "set", "--self", "--home", home.root, input="You are Ember.\n").code == 0
    assert nb.current(soul, "self")["text"] == "You are Ember."


def test_an_index_past_ivf_min_is_trained_then_extended_holding_every_packet(parts, monkeypatch):
    """The vector index is written as a stream (search/vectorfile.py), never whole in memory:
    through the exact index, its IVF retraining and an extension, every packet is in it with
    the vector the database holds."""
    import faiss

    from soulctl.search import vectors

    monkeypatch.setattr(vectors, "IVF_MIN", 600)
    monkeypatch.setattr(vectors, "nlist_for", lambda total: 8)
    monkeypatch.setattr("soulctl.log.duckdb.store.vector_lag_limit", lambda total: 200)
    home, store, embedder = parts
    rng = np.random.default_rng(0)
    kinds = []
    for start in range(0, 1250, 250):
        vecs = rng.standard_normal((250, 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store.add(packets([f"packet {start + i}" for i in range(250)]), vecs, embedder.model_id)
        kinds.append(store.index.state().vector_kind)
    state = store.index.state()  # exact, exact, trained at 750, extended, extended
    assert kinds == ["flat", "flat", "ivf", "ivf", "ivf"]
    assert (state.trained_at, state.vector_seq) == (750, 1250)
    index = faiss.read_index(str(home.data / "index" / "log" / "vectors.faiss"))
    assert index.ntotal == 1250
    _, rows = store.sql("SELECT seq, embedding FROM packets WHERE seq IN (1, 700, 1250) ORDER BY seq")
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    got = index.reconstruct_batch(np.array([r[0] for r in rows], np.int64))
    assert np.allclose(got, np.array([r[1] for r in rows], np.float32))
    assert semantic(store, got[1], 1) == [700]


def test_a_bulk_write_caps_duckdbs_buffer_pool_then_gives_it_back(parts):
    """An import runs inside store.bulk(): DuckDB would otherwise keep every block it read, up
    to 80% of RAM, and the importing process would grow with the log."""
    home, store, embedder = parts
    lines = corpus_lines(3)
    store.add(packets(lines), embedder.encode(lines), embedder.model_id)

    def limit():  # on the instance the store's own reads and writes use
        from soulctl.log.duckdb.connection import attached

        with attached(store.path, read_only=True) as con:
            return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    before = limit()
    with store.bulk():
        assert limit() == "61.0 MiB"  # 64 MB
        store.add(packets(["one more"]), embedder.encode(["one more"]), embedder.model_id)
    assert limit() == before != "61.0 MiB"
    assert store.count() == 4
