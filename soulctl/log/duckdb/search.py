"""Search on the DuckDB backend: FAISS (memory-mapped) and tantivy rankings under the shared
lock, fused by reciprocal rank, then one database read for the hits themselves."""

from __future__ import annotations

import numpy as np

from soulctl.log.duckdb.connection import LazyRead
from soulctl.log.duckdb.rows import fetch_by_seq, where_clause
from soulctl.log.packets import Filters, Hit, Packet
from soulctl.search.fusion import rrf

# Hybrid search adds a third ranking: the turns beside each semantic and keyword hit (seq ± 1,
# same session). On the dev set it lifts recall@10 from 80.4% to 87.3% (tests/bench/bench_recall.py).
CONTEXT_FROM = ("semantic", "keyword")
CONTEXT_STEPS = (1, -1)


class Ranking:
    """Mixed into DuckDBStore: needs its path, index, _write and _sync_indexes."""

    def search(self, vector: np.ndarray | None, text: str | None, k: int, filters: Filters,
               depth: int | None = None) -> list[tuple[Packet, Hit]]:
        """One pass: FAISS (memory-mapped) and tantivy under the shared lock, then a single
        database read for the hits themselves. Filters on vectors run exactly in DuckDB."""
        depth = depth or k
        if not self.path.exists():
            return []
        state = self.index.state()
        if text is not None and (state.keyword_seq < state.log_seq  # left behind by a crash
                                 or not self.index.keyword_current(state)):  # or by an older soulctl
            with self._write() as con:
                self._sync_indexes(con)
        with LazyRead(self) as db:
            state = self.index.state()  # consistent with the log under the shared lock
            rankings: dict[str, list[tuple[int, float]]] = {}
            if vector is not None:
                rankings["semantic"] = self._vector_ranking(db, np.asarray(vector, np.float32).ravel(),
                                                            depth, filters, state)
            if text is not None:
                rankings["keyword"] = self._keyword_ranking(db, text, depth, filters)
            if len(rankings) > 1:
                rankings["context"] = self._context_ranking(db, rankings, filters)
            if len(rankings) > 1:
                fused = rrf(rankings, k)
            else:
                name, ranking = next(iter(rankings.items()))
                fused = [(key, score, {name: i}, {name: score})
                         for i, (key, score) in enumerate(ranking[:k], 1)]
            if not fused:
                return []
            packets = fetch_by_seq(db.get(), [key for key, *_ in fused])
        return [(packets[key], Hit(packets[key].id, score, ranks, scores))
                for key, score, ranks, scores in fused if key in packets]

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

    def _context_ranking(self, db, rankings, filters) -> list[tuple[int, float]]:
        """The turns beside each hit, in the hit's order: an answer ("Thirty-five pounds") says
        little alone, but it follows the question that matches. Neighbours are seq ± 1 in
        the same session (a chat turn writes its two packets together)."""
        ranked = sorted((rank, i, seq, score) for i, name in enumerate(CONTEXT_FROM)
                        for rank, (seq, score) in enumerate(rankings.get(name, [])))
        order = [(seq, score) for _, _, seq, score in ranked]
        if not order:
            return []
        wanted = {n for seq, _ in order for n in (seq + d for d in CONTEXT_STEPS)}
        where, params = where_clause(filters)
        listed = ", ".join(str(int(n)) for n in wanted if n > 0)
        hits = ", ".join(str(int(seq)) for seq, _ in order)
        table = "log" if filters.min_resonance is not None else "packets"  # the view only for marks
        rows = db.get().execute(f"SELECT seq, session FROM {table} WHERE (seq IN ({listed}) {where}) "
                                f"OR seq IN ({hits})", params).fetchall()
        session = dict(rows)
        out, seen = [], set()
        for seq, score in order:
            for n in (seq + d for d in CONTEXT_STEPS):
                if n in session and session[n] == session.get(seq) and n not in seen:
                    seen.add(n)
                    out.append((n, score))
        return out

    def _keyword_ranking(self, db, text, depth, filters) -> list[tuple[int, float]]:
        want = depth
        while True:
            seqs, scores = self.index.keyword_search(text, want, filters)
            pairs = list(zip(seqs, scores))
            if filters.min_resonance is not None and pairs:  # marks live only in the database
                keep = {r[0] for r in db.get().execute(
                    "SELECT seq FROM log WHERE seq IN (SELECT unnest(?::BIGINT[])) AND resonance >= ?",
                    [[int(s) for s in seqs], float(filters.min_resonance)]).fetchall()}
                pairs = [p for p in pairs if p[0] in keep]
            if len(pairs) >= depth or len(seqs) < want:
                return pairs[:depth]
            want *= 8

