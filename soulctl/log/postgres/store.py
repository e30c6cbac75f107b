"""The bifocal log in PostgreSQL + pgvector (DESIGN §11): what Supabase runs, for a log that
many processes and machines write and read at once.

Each thread has its own connection (the servers' workers, a chat's writer), so the store is a
small pool. Writers take one advisory lock per transaction, so packets get gapless `seq`s in
commit order and a batch is whole or absent; readers never wait (MVCC). Search runs the HNSW
(cosine) ranking and the full-text ranking as two SQL queries at once, fused by reciprocal rank."""

from __future__ import annotations

from contextlib import contextmanager

import json
import logging
import threading
from typing import Iterator, Sequence

import numpy as np

from soulctl.errors import AlreadyExists, InvalidInput, NotFound
from soulctl.log.context import CONTEXT_STEPS
from soulctl.log.packets import Filters, Hit, NewPacket, Packet, check_vectors, utcnow
import soulctl.log.postgres.ranking as ranking
import soulctl.log.postgres.schema as schema
from soulctl.log.postgres.connect import connect, memory_mb, vec
from soulctl.log.postgres.user import UserQueries
from soulctl.log.postgres.filters import neighbours_sql, where_clause
from soulctl.log.rows import SELECT, naive_utc, new_rows, packet_from_new_row, packet_from_row
from soulctl.log.store import Store, Turn, WriteInterrupted, embedder_mismatch

log = logging.getLogger(__name__)

WRITE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('soulctl_packets'))"
INSERT = ("seq", "id", "ts", "session", "role", "prose", "embedding", "embed_model", "generation",
          "corpus", "resonance", "resonance_source", "parent", "corrects", "meta")
# HNSW candidates per query (m 16, ef_construction 64). bench_store, recall@10: at 100k, ef 100
# gave 0.93, 200 0.97, 400 0.99; at 1M, 300 gave 0.90 (12 ms), 600 0.96 (20 ms), 800 0.97 (27 ms)
EF_SEARCH = 800


class PostgresStore(UserQueries, Store):
    backend = "postgresql"

    def __init__(self, url: str | None = None, embedded=None):
        self._url = url
        self.embedded = embedded  # the data directory of the embedded server, if it is one
        self._local = threading.local()
        self._ready = False
        self._all: list = []
        self._server = None  # the embedded server's handle
        self._pool = None  # threads for the second half of a hybrid search, each its connection
        self._lock = threading.Lock()

    # -- connections ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._url is None:
            from soulctl.log.postgres.connect import embedded_url

            self._url, self._server = embedded_url(self.embedded)
        return self._url

    def con(self):
        con = getattr(self._local, "con", None)
        if con is None or con.closed:
            con = connect(self.url)
            con.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
            con.execute("SET hnsw.iterative_scan = relaxed_order")
            self._local.con = con
            self._all.append(con)
        return con

    def close(self) -> None:
        """Close the connections; an embedded server stops once no live process uses it."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for con in self._all:
            con.close()
        self._all.clear()
        self._local = threading.local()
        if self._server is not None:
            from soulctl.log.postgres.connect import prune_handles

            prune_handles(self.embedded)
            self._server.cleanup()
            # forget the handle, so this process registers again when it next opens the store
            # (the wheel keeps one per data directory for the whole process otherwise)
            type(self._server)._instances.pop(self._server.pgdata, None)
            self._server, self._url, self._ready = None, None, False

    def stop(self, force: bool = False) -> dict:
        if self.embedded is None:
            return super().stop(force)
        from soulctl.log.postgres.connect import stop_embedded

        self.close()  # this process's own handle first
        return {"backend": "postgresql", "embedded": True, **stop_embedded(self.embedded, force)}

    def _has_tables(self) -> bool:
        if self._ready:
            return True
        con = self.con()
        pending = schema.pending(con)
        if pending and "0001_packets" not in pending:  # an older soulctl's log: upgraded in place
            schema.apply(con, 0)  # only the first migration needs the dimension
            pending = schema.pending(con)
        self._ready = not pending
        return self._ready

    def _migrate(self, dim: int | None) -> None:
        if self._has_tables():
            return
        con = self.con()
        if dim is None:
            raise NotFound("the log is empty: nothing to read yet", hint="add packets with `soulctl log add`")
        schema.apply(con, dim)  # connect() has made sure pgvector is there
        self._ready = True

    # -- metadata ------------------------------------------------------------------------
    def create(self, embed_model: str, dim: int) -> None:
        self._migrate(dim)
        con = self.con()
        with con.transaction():
            con.execute("INSERT INTO store_meta VALUES ('embed_model', %s), ('dim', %s) ON CONFLICT DO NOTHING",
                        [embed_model, str(dim)])

    def embedder_record(self) -> tuple[str, int] | None:
        if not self._has_tables():
            return None
        con = self.con()
        rows = dict(con.execute("SELECT key, value FROM store_meta").fetchall())
        if "embed_model" not in rows:
            return None
        return rows["embed_model"], int(rows["dim"])

    # -- writes --------------------------------------------------------------------------
    def add(self, packets: Sequence[NewPacket], embeddings: np.ndarray, embed_model: str,
            index: bool = True) -> list[Packet]:
        """Whole batches; `index=False` (a bulk load) drops the HNSW graph, which reindex()
        builds once afterwards — far faster than growing it row by row."""
        if len(packets) != len(embeddings):
            raise ValueError("one embedding per packet")
        if not packets:
            return []
        check_vectors(embeddings)
        dim = int(embeddings.shape[1])
        self._migrate(dim)
        con = self.con()
        import psycopg

        written: list[Packet] = []
        try:
            with con.transaction():
                con.execute(WRITE_LOCK)
                meta = dict(con.execute("SELECT key, value FROM store_meta").fetchall())
                if not meta:
                    con.execute("INSERT INTO store_meta VALUES ('embed_model', %s), ('dim', %s)",
                                [embed_model, str(dim)])
                elif meta["embed_model"] != embed_model or int(meta["dim"]) != dim:
                    raise embedder_mismatch(meta["embed_model"], embed_model)
                if not index:
                    con.execute("DROP INDEX IF EXISTS packets_hnsw")
                first = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM packets").fetchone()[0]
                rows = new_rows(packets, embeddings, embed_model, int(first))
                self._copy_in(con, rows)
                written = [packet_from_new_row(r) for r in rows]
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists("a packet with one of these ids is already in the log",
                                hint="leave `id` out to add packets as new ones") from None
        except KeyboardInterrupt:
            if written:  # the block ended: committed as Ctrl-C came
                raise WriteInterrupted(written) from None
            raise
        return written

    @staticmethod
    def _copy_in(con, rows: list[dict]) -> None:
        with con.cursor().copy(f"COPY packets ({', '.join(INSERT)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "text", "timestamp", "text", "text", "text", "vector", "text", "text",
                            "text", "float8", "text", "text", "text", "jsonb"])
            for r in rows:
                meta = json.loads(r["meta"]) if isinstance(r["meta"], str) else r["meta"]
                copy.write_row([r["seq"], r["id"], naive_utc(r["ts"]), r["session"], r["role"], r["prose"],
                                np.asarray(r["embedding"], dtype=np.float32), r["embed_model"], r["generation"],
                                r["corpus"], r["resonance"], r["resonance_source"], r["parent"],
                                r["corrects"], meta])

    def mark(self, packet_id: str, score: float, source: str) -> None:
        if not 0.0 <= score <= 1.0:
            raise InvalidInput(f"resonance {score} is outside [0, 1]")
        self._migrate(None)
        con = self.con()
        with con.transaction():
            if not con.execute("SELECT 1 FROM packets WHERE id = %s", [packet_id]).fetchone():
                raise NotFound(f"no packet {packet_id}", hint="see `soulctl log ls`")
            con.execute("INSERT INTO resonance_marks (packet_id, score, source, ts) VALUES (%s, %s, %s, %s)",
                        [packet_id, float(score), source, utcnow().replace(tzinfo=None)])

    def mark_many(self, marks: list[tuple[str, float, str]]) -> None:
        if not marks:
            return
        self._migrate(None)
        now = utcnow().replace(tzinfo=None)
        con = self.con()
        with con.transaction(), con.cursor() as cur:
            cur.executemany("INSERT INTO resonance_marks (packet_id, score, source, ts) VALUES (%s, %s, %s, %s)",
                            [(pid, float(score), source, now) for pid, score, source in marks])

    def latest_marks(self, source: str) -> dict[str, float]:
        if not self._has_tables():
            return {}
        return {r[0]: float(r[1]) for r in self._fetch(
            "SELECT DISTINCT ON (packet_id) packet_id, score FROM resonance_marks WHERE source = %s "
            "ORDER BY packet_id, ts DESC, n DESC", [source])}

    def reindex(self) -> dict:
        """Build the HNSW graph anew (after bulk loads) and refresh the planner's statistics."""
        self._migrate(None)
        con = self.con()
        con.execute(f"SET maintenance_work_mem = '{memory_mb()}MB'")  # the graph built in memory
        con.execute("SET max_parallel_maintenance_workers = 2")
        con.execute("DROP INDEX IF EXISTS packets_hnsw")
        con.execute(schema.HNSW)
        con.execute("SELECT gin_clean_pending_list('packets_tsv')")  # a bulk load's pending keys
        con.execute("ANALYZE packets")
        return {"packets": self.count(), "vector_kind": "hnsw", **self.index_state()}

    # -- reads ---------------------------------------------------------------------------
    def _neighbours(self, seqs: list[int], filters: Filters) -> dict[int, list[int]]:
        if not seqs:
            return {}
        session = dict(self._fetch(*neighbours_sql(seqs, filters, CONTEXT_STEPS)))
        return {seq: [n for n in (seq + d for d in CONTEXT_STEPS) if n in session and session[n] == session.get(seq)]
                for seq in seqs}

    def _fetch(self, query: str, params: Sequence = ()) -> list[tuple]:
        return self.con().execute(query, params).fetchall()

    def get(self, packet_id: str, with_embedding: bool = False) -> Packet:
        if not self._has_tables():
            raise NotFound(f"no packet {packet_id}: the log is empty")
        cols = SELECT + (", embedding" if with_embedding else "")
        # a whole id by the index; else a prefix, literal (`_` and `%` are not wildcards)
        rows = self._fetch(f"SELECT {cols} FROM log WHERE id = %s", [packet_id]) or \
            self._fetch(f"SELECT {cols} FROM log WHERE starts_with(id, %s) LIMIT 2", [packet_id])
        if not rows:
            raise NotFound(f"no packet {packet_id}", hint="see `soulctl log ls`")
        if len(rows) > 1:
            raise InvalidInput(f"packet id prefix {packet_id!r} is ambiguous", hint="give more of the id")
        row = rows[0]
        if with_embedding:
            row = (*row[:-1], vec(row[-1]).tolist())
        return packet_from_row(row, with_embedding)

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        if not ids or not self._has_tables():
            return set()
        return {r[0] for r in self._fetch("SELECT id FROM packets WHERE id = ANY(%s)", [list(ids)])}

    def list(self, filters: Filters, limit: int | None = None, newest_first: bool = True) -> Iterator[Packet]:
        if not self._has_tables():
            return
        where, params = where_clause(filters)
        order = "DESC" if newest_first else "ASC"
        lim = f"LIMIT {int(limit)}" if limit is not None else ""
        con = self.con()
        with con.transaction(), con.cursor(name=f"soulctl_list_{id(self)}") as cur:
            cur.itersize = 1000
            cur.execute(f"SELECT {SELECT} FROM log WHERE TRUE {where} ORDER BY seq {order} {lim}", params)
            for row in cur:
                yield packet_from_row(row)

    def count(self, filters: Filters | None = None) -> int:
        if not self._has_tables():
            return 0
        where, params = where_clause(filters)
        table = "log" if filters is not None and filters.min_resonance is not None else "packets"
        return int(self._fetch(f"SELECT count(*) FROM {table} WHERE TRUE {where}", params)[0][0])

    def vectors(self, role: str | None = None) -> tuple[list[dict], np.ndarray]:
        return self._light_rows("", role)

    def unmarked(self, source: str, role: str | None = None) -> tuple[list[dict], np.ndarray]:
        return self._light_rows(source, role)

    def _light_rows(self, unmarked_by: str, role: str | None) -> tuple[list[dict], np.ndarray]:
        if not self._has_tables():
            return [], np.zeros((0, 0), np.float32)
        conds, params = [], []
        if unmarked_by:
            conds.append("NOT EXISTS (SELECT 1 FROM resonance_marks r WHERE r.packet_id = l.id AND r.source = %s)")
            params.append(unmarked_by)
        if role:
            conds.append("l.role = %s")
            params.append(role)
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        before = ("(SELECT b.prose FROM packets b WHERE b.session = l.session AND b.seq < l.seq "
                  "ORDER BY b.seq DESC LIMIT 1)") if unmarked_by else "NULL"
        rows = self._fetch(f"SELECT l.id, l.seq, l.session, l.role, l.prose, l.resonance, l.embedding, {before} "
                           f"FROM log l {where} ORDER BY l.seq", params)
        meta = [{"id": r[0], "seq": r[1], "session": r[2], "role": r[3], "prose": r[4], "resonance": r[5],
                 **({"before": r[7]} if unmarked_by else {})} for r in rows]
        vecs = np.stack([vec(r[6]) for r in rows]) if rows else np.zeros((0, 0), np.float32)
        return meta, vecs

    def nearest_earlier(self, vectors: np.ndarray, seqs: Sequence[int]) -> np.ndarray:
        """Through the HNSW index: per vector, the nearest packet logged before it."""
        out = np.full(len(seqs), -1.0, dtype=np.float32)
        if not len(seqs) or not self._has_tables():
            return out
        with self.con().cursor() as cur:
            for i, (query, seq) in enumerate(zip(np.asarray(vectors, np.float32), seqs)):
                row = cur.execute("SELECT 1 - (embedding <=> %s) FROM packets WHERE seq < %s "
                                  "ORDER BY embedding <=> %s LIMIT 1", [query, int(seq), query]).fetchone()
                if row is not None:
                    out[i] = float(row[0])
        return out

    # -- search ----------------------------------------------------------------------------
    @contextmanager
    def candidates(self) -> Iterator[_Candidates | None]:
        """The vector ranking (HNSW, cosine) and the keyword ranking (the GIN-indexed tsvector),
        each one SQL query with the filters pushed in, run at once on two connections."""
        yield _Candidates(self) if self._has_tables() else None

    def _semantic(self, query: np.ndarray, filters: Filters, depth: int) -> list[tuple[int, float]]:
        sql, params = ranking.semantic_sql(filters, depth)
        return [(int(r[0]), float(r[1])) for r in self._fetch(sql, [query, *params, query])]

    def _keyword(self, text: str, filters: Filters, depth: int) -> list[tuple[int, float]]:
        """Web-search syntax, as Supabase's hybrid search: every word (stemmed, stopwords
        dropped), "a phrase", a or b, -not."""
        tsquery = self._fetch("SELECT websearch_to_tsquery('english', %s)::text", [text])[0][0]
        if not tsquery:  # stopwords only
            return []
        sql, params = ranking.keyword_sql(tsquery, filters, depth)
        return [(int(r[0]), float(r[1])) for r in self._fetch(sql, params)]

    def _at_once(self, halves: dict) -> dict[str, list[tuple[int, float]]]:
        """Each ranking on its own connection, at once: a hybrid search takes as long as its
        slower half. (Two snapshots: a packet committed between them can be in one ranking only.)"""
        if len(halves) < 2:
            return {name: run() for name, run in halves.items()}
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="soulctl-search")
        (first, run_first), *rest = halves.items()
        later = {name: self._pool.submit(run) for name, run in rest}
        done = {first: run_first()}
        return {**done, **{name: future.result() for name, future in later.items()}}

    # -- state -----------------------------------------------------------------------------
    def index_state(self) -> dict:
        rows = self._fetch("SELECT c.relname, pg_relation_size(c.oid), i.indisvalid FROM pg_index i "
                           "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
                           "WHERE t.relname = 'packets' ORDER BY c.relname")
        return {"indexes": {name: {"bytes": int(size), "valid": bool(valid)} for name, size, valid in rows}}



class _Candidates:
    """What the shared ranking asks of the Postgres backend."""

    def __init__(self, store: PostgresStore):
        self.store = store

    def rankings(self, vector, text, depth, filters) -> dict[str, list[tuple[int, float]]]:
        halves = {}
        if vector is not None:
            query = np.asarray(vector, np.float32).ravel()
            halves["semantic"] = lambda: self.store._semantic(query, filters, depth)
        if text is not None:
            halves["keyword"] = lambda: self.store._keyword(text, filters, depth)
        return self.store._at_once(halves)

    def neighbours(self, seqs, filters) -> dict[int, list[int]]:
        return self.store._neighbours(seqs, filters)

    def by_seq(self, seqs) -> dict[int, Packet]:
        if not seqs:
            return {}
        rows = self.store._fetch(f"SELECT {SELECT} FROM log WHERE seq = ANY(%s)", [[int(s) for s in seqs]])
        return {p.seq: p for p in map(packet_from_row, rows)}

    def turns(self, seqs) -> dict[int, Turn]:
        wanted = sorted({n for s in seqs for n in (s - 1, s, s + 1) if n > 0})
        if not wanted:
            return {}
        rows = self.store._fetch(f"SELECT {SELECT}, embedding FROM log WHERE seq = ANY(%s)", [wanted])
        return {int(r[1]): Turn(packet_from_row(r[:-1]), vec(r[-1])) for r in rows}

    def bounds(self):
        first, last = self.store._fetch("SELECT min(ts), max(ts) FROM packets")[0]
        return None if first is None else (first.date(), last.date())

    def speakers(self) -> set[str]:
        """Who speaks in the log (meta.speaker), kept by the store and brought up to date from
        the packets written since it last looked."""
        seen, names = getattr(self.store, "_speakers", (0, frozenset()))
        rows = self.store._fetch("SELECT max(seq), array_agg(DISTINCT meta->>'speaker') FILTER "
                                 "(WHERE meta->>'speaker' IS NOT NULL) FROM packets WHERE seq > %s", [seen])
        if rows[0][0] is not None:
            names = names | set(rows[0][1] or [])
            self.store._speakers = (int(rows[0][0]), names)
        return set(names)
