"""Search's candidates on the DuckDB backend: FAISS (memory-mapped) and tantivy rankings under
the shared lock, the packets they name read from the database (log/search.py ranks them)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np

from soulctl.log.context import CONTEXT_STEPS
from soulctl.log.duckdb.connection import LazyRead
from soulctl.log.duckdb.rows import fetch_by_seq, neighbours, vectors_from, where_clause
from soulctl.log.packets import Filters, Packet
from soulctl.log.store import Turn


def _best_earlier(queries: np.ndarray, seqs: np.ndarray, other_seqs: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per query, the highest inner product with the `other` rows logged before it (−1 if none)."""
    if not len(other_seqs):
        return np.full(len(seqs), -1.0, dtype=np.float32)
    sims = queries @ np.asarray(other, dtype=np.float32).T
    sims[other_seqs[None, :] >= seqs[:, None]] = -np.inf
    best = sims.max(axis=1)
    return np.where(np.isfinite(best), best, -1.0).astype(np.float32)


class Ranking:
    """Mixed into DuckDBStore: needs its path, index, _write and _sync_indexes."""

    @contextmanager
    def candidates(self) -> Iterator[_Candidates | None]:
        """FAISS (memory-mapped) and tantivy under the shared lock supply the rankings, one
        database read at a time the packets they name (filters on vectors run exactly in
        DuckDB). A keyword index a crash or an older soulctl left behind is brought up first."""
        if not self.path.exists():
            yield None
            return
        state = self.index.state()
        if state.keyword_seq < state.log_seq or not self.index.keyword_current(state):
            with self._write() as con:
                self._sync_indexes(con)
        with LazyRead(self) as db:
            # the index state is read again, consistent with the log under the shared lock
            yield _Candidates(self, db, self.index.state())

    def _vector_ranking(self, db, vector, depth, filters, state) -> list[tuple[int, float]]:
        dim = int(vector.shape[0])
        if filters.active():  # exact within the filter
            where, params = where_clause(filters)
            rows = db.get().execute(
                f"SELECT seq, array_inner_product(embedding, ?::FLOAT[{dim}]) AS s FROM log "
                f"WHERE TRUE {where} ORDER BY s DESC LIMIT {int(depth)}", [vector.tolist(), *params]
            ).fetchall()
            return [(int(r[0]), float(r[1])) for r in rows]
        seqs, scores = self.index.vector_search(vector, depth)
        pairs = list(zip(seqs.tolist(), scores.tolist()))
        reach = 0  # packets up to this seq are covered by the FAISS index and its tail
        if self.index.has_vectors() or state.vector_seq == 0:
            reach = state.vector_seq
            if state.tail_seq >= state.vector_seq:
                tail = self.index.tail_search(vector, depth, state)
                if tail is not None:
                    pairs += zip(tail[0].tolist(), tail[1].tolist())
                    reach = max(reach, state.tail_seq)
        if reach < state.log_seq:  # packets no index reaches yet (a crash, a bulk load): exact
            rows = db.get().execute(
                f"SELECT seq, array_inner_product(embedding, ?::FLOAT[{dim}]) AS s FROM packets "
                f"WHERE seq > ? ORDER BY s DESC LIMIT {int(depth)}", [vector.tolist(), reach]).fetchall()
            pairs += [(int(s), float(v)) for s, v in rows]
        pairs.sort(key=lambda p: -p[1])
        return pairs[:depth]

    def nearest_earlier(self, vectors: np.ndarray, seqs, depth: int = 16) -> np.ndarray:
        """One FAISS call for the batch (top `depth` each, the best of them logged earlier), the
        tail and any packets no index reaches yet exactly; when all of a vector's top hits came
        later (a run of near-duplicates), an exact scan of the earlier packets. With an IVF index
        (100k packets and more) the first part is approximate."""
        seqs = np.asarray(seqs, dtype=np.int64)
        out = np.full(len(seqs), -1.0, dtype=np.float32)
        if not len(seqs) or not self.path.exists():
            return out
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = queries.shape[1]
        with LazyRead(self) as db:
            state = self.index.state()
            reach = state.vector_seq if self.index.has_vectors() else 0
            ids, scores = self.index.vector_search_many(queries, depth) if reach else (None, None)
            unsure = np.zeros(len(seqs), dtype=bool)
            if ids is not None and ids.shape[1]:
                earlier = (ids >= 0) & (ids < seqs[:, None])
                masked = np.where(earlier, scores, -np.inf)
                out = np.maximum(out, np.where(earlier.any(axis=1), masked.max(axis=1), -1.0)).astype(np.float32)
                unsure = ~earlier.any(axis=1) & ((ids >= 0).sum(axis=1) >= depth)
            tail = (self.index.tail_arrays(state, dim) if state.tail_seq > reach == state.vector_seq else None)
            if tail is not None and len(tail[0]):
                reach = max(reach, state.tail_seq)
                out = np.maximum(out, _best_earlier(queries, seqs, np.asarray(tail[0]), np.asarray(tail[1])))
            if reach < state.log_seq:  # packets no index reaches yet: exactly, from the database
                rows = vectors_from(db.get().execute(
                    "SELECT seq, embedding FROM packets WHERE seq > ? ORDER BY seq", [reach]).fetchnumpy())
                out = np.maximum(out, _best_earlier(queries, seqs, *rows))
            for i in np.flatnonzero(unsure):
                row = db.get().execute(
                    f"SELECT max(array_inner_product(embedding, ?::FLOAT[{dim}])) FROM packets WHERE seq < ?",
                    [queries[i].tolist(), int(seqs[i])]).fetchone()
                if row[0] is not None:
                    out[i] = max(out[i], float(row[0]))
        return out

    def _keyword_ranking(self, db, text, depth, filters) -> list[tuple[int, float]]:
        want = depth
        only_db = Filters(min_resonance=filters.min_resonance, speaker=filters.speaker)
        while True:
            seqs, scores = self.index.keyword_search(text, want, filters)
            pairs = list(zip(seqs, scores))
            if only_db.active() and pairs:  # marks and speakers live only in the database
                where, params = where_clause(only_db)
                keep = {r[0] for r in db.get().execute(
                    f"SELECT seq FROM log WHERE seq IN (SELECT unnest(?::BIGINT[])) {where}",
                    [[int(s) for s in seqs], *params]).fetchall()}
                pairs = [p for p in pairs if p[0] in keep]
            if len(pairs) >= depth or len(seqs) < want:
                return pairs[:depth]
            want *= 8



class _Candidates:
    """What the shared ranking asks of the DuckDB backend, all under one shared lock."""

    def __init__(self, store, db, state):
        self.store, self.db, self.state = store, db, state

    def rankings(self, vector, text, depth, filters) -> dict[str, list[tuple[int, float]]]:
        out = {}
        if vector is not None:
            out["semantic"] = self.store._vector_ranking(self.db, np.asarray(vector, np.float32).ravel(),
                                                         depth, filters, self.state)
        if text is not None:
            out["keyword"] = self.store._keyword_ranking(self.db, text, depth, filters)
        return out

    def neighbours(self, seqs, filters) -> dict[int, list[int]]:
        return neighbours(self.db.get(), seqs, filters, CONTEXT_STEPS)

    def by_seq(self, seqs) -> dict[int, Packet]:
        return fetch_by_seq(self.db.get(), seqs) if seqs else {}

    def turns(self, seqs) -> dict[int, Turn]:
        """Whole packets, their vectors from the FAISS index and its tail where they hold them
        (the database would decompress the column for each)."""
        packets = fetch_by_seq(self.db.get(), sorted({n for s in seqs for n in (s - 1, s, s + 1) if n > 0}))
        if not packets:
            return {}
        vectors = self.store.index.vectors_of(list(packets), self.state)
        if missing := [s for s in packets if s not in vectors]:
            found, vecs = vectors_from(self.db.get().execute(
                f"SELECT seq, embedding FROM packets WHERE seq IN ({', '.join(map(str, missing))})").fetchnumpy())
            vectors.update(zip(found.tolist(), vecs))
        return {seq: Turn(p, vectors[seq]) for seq, p in packets.items() if seq in vectors}

    def bounds(self):
        first, last = self.db.get().execute("SELECT min(ts), max(ts) FROM packets").fetchone()
        return None if first is None else (first.date(), last.date())

    def speakers(self) -> set[str]:
        """Who speaks in the log (meta.speaker), kept by the store and brought up to date from
        the packets written since it last looked."""
        seen, names = getattr(self.store, "_speakers", (0, frozenset()))
        if seen < self.state.log_seq:
            rows = self.db.get().execute(
                "SELECT DISTINCT json_extract_string(meta, '$.speaker') FROM packets WHERE seq > ? "
                "AND json_extract_string(meta, '$.speaker') IS NOT NULL", [seen]).fetchall()
            names = names | {r[0] for r in rows}
            self.store._speakers = (self.state.log_seq, names)
        return set(names)
