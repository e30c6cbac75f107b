"""Derived search indexes of the log: FAISS for vectors, tantivy (BM25) for keywords.

The database is the record; these are caches keyed by packet `seq`, rebuilt from it at will.
`state.json` says how far each one reaches. Writers extend them after their database commit
(under the store's exclusive lock); a crash in between leaves an index that lags, which the
next writer (or `log reindex`) catches up. Searchers memory-map the vector index, so opening
it costs milliseconds at a million packets.

Rewriting the FAISS file for every write would cost its whole size, so packets past its reach
go to the tail: two append-only files (seqs, float32 rows) that a search scans exactly beside
the FAISS index. When the tail grows long enough the writer folds it into FAISS.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from soulctl.search import vectorfile, vectors
from soulctl.search.keyword import open_index, parse_query, user_query

log = logging.getLogger(__name__)

VECTORS = "vectors.faiss"
TAIL_SEQS, TAIL_VECTORS = "tail.seq", "tail.f32"
STATE = "state.json"
KEYWORD = "keyword"
# 2: the packet's date in words ("28 may 2026") beside its prose, so "what did I say on 28 May?"
# finds that day's packets. An index of another version is rebuilt by the next writer or search.
KEYWORD_VERSION = 2
KEYWORD_FIELDS = ["prose", "when"]


@dataclass
class IndexState:
    log_seq: int = 0  # the last packet committed to the log (written under the store lock)
    vector_seq: int = 0
    keyword_seq: int = 0
    embed_model: str | None = None
    vector_kind: str | None = None
    trained_at: int = 0  # packets in the index when the IVF centroids were trained
    tail_seq: int = 0  # the tail files hold the vectors of packets past vector_seq up to here
    tail_rows: int = 0
    keyword_version: int = KEYWORD_VERSION


class LogIndex:
    def __init__(self, root: Path):
        self.root = root
        self._vectors = None
        self._vectors_stamp = None
        self._kw = None

    # -- state ---------------------------------------------------------------------------
    def state(self) -> IndexState:
        path = self.root / STATE
        if not path.is_file():
            return IndexState()
        try:
            data = json.loads(path.read_text())
            data.setdefault("keyword_version", 1)  # written before versions were recorded
            return IndexState(**{k: v for k, v in data.items() if k in IndexState.__annotations__})
        except (json.JSONDecodeError, TypeError):
            return IndexState()

    def save_state(self, state: IndexState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{STATE}.{os.getpid()}"
        tmp.write_text(json.dumps(asdict(state)))
        os.replace(tmp, self.root / STATE)

    def note_log_seq(self, seq: int) -> None:
        state = self.state()
        if state.log_seq != seq:
            state.log_seq = int(seq)
            self.save_state(state)

    def has_vectors(self) -> bool:
        return (self.root / VECTORS).is_file()

    def reset(self) -> None:
        self._vectors = self._kw = None
        if self.root.exists():
            shutil.rmtree(self.root)

    # -- vectors -------------------------------------------------------------------------
    def vector_search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return vectors.search(self._load_vectors(), query, k)

    def vector_search_many(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return vectors.search_many(self._load_vectors(), queries, k)

    def vectors_of(self, seqs: list[int], state: IndexState) -> dict[int, np.ndarray]:
        """The stored vectors of `seqs` that the FAISS index and the tail hold (the rest are
        the database's): read from memory where the database would decompress a column."""
        out: dict[int, np.ndarray] = {}
        index = self._load_vectors() if self.has_vectors() else None
        indexed = np.array([s for s in seqs if s <= state.vector_seq], np.int64)
        if index is not None and len(indexed):
            try:
                found = vectors.reconstruct(index, indexed)
            except RuntimeError:  # an id the index lacks: the database answers for all
                found = None
            if found is not None:
                out.update(zip(indexed.tolist(), found))
        rest = [s for s in seqs if s not in out and state.vector_seq < s <= state.tail_seq]
        # the tail's width is the index's (a log with no index yet is small: the database's)
        tail = self.tail_arrays(state, index.d) if rest and index is not None else None
        if tail is not None and len(tail[0]):
            at = np.searchsorted(tail[0], rest)
            for seq, i in zip(rest, at):
                if i < len(tail[0]) and tail[0][i] == seq:
                    out[seq] = np.array(tail[1][i])
        return out

    def tail_arrays(self, state: IndexState, dim: int):
        """(seqs, vectors) of the tail, memory-mapped; None when the files fall short."""
        if state.tail_rows == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        try:
            return (np.memmap(self.root / TAIL_SEQS, dtype=np.int64, mode="r", shape=(state.tail_rows,)),
                    np.memmap(self.root / TAIL_VECTORS, dtype=np.float32, mode="r", shape=(state.tail_rows, dim)))
        except (OSError, ValueError):
            return None

    def _load_vectors(self):
        path = self.root / VECTORS
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._vectors is None or stamp != self._vectors_stamp:
            self._vectors = vectors.open_mapped(path)
            self._vectors_stamp = stamp
        return self._vectors

    def vector_extend(self, chunks: vectorfile.Chunks, everything: vectorfile.Chunks, upto: int,
                      total: int, dim: int, sample) -> None:
        """Fold the vectors of `chunks` (those past the index, up to seq `upto`) into the index
        file, streamed (vectorfile); (re)train an IVF index on `sample` and fold `everything`
        when the log first passes IVF_MIN or doubles."""
        state = self.state()
        path = self.root / VECTORS
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{VECTORS}.{os.getpid()}")
        retrain = total >= vectors.IVF_MIN and (state.vector_kind != "ivf" or total >= 2 * state.trained_at)
        try:
            if retrain:
                trained = vectors.new_index(dim, total, sample)
                vectorfile.extend(None, tmp, everything, trained=trained)
                state.trained_at = total
            else:
                try:
                    vectorfile.extend(path if path.is_file() else None, tmp, chunks, dim=dim)
                except vectorfile.Unreadable:  # not a file these writers extend: again, whole
                    vectorfile.extend(None, tmp, everything, dim=dim)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        state.vector_kind = vectorfile.kind(path)
        state.vector_seq = int(upto)
        state.tail_seq, state.tail_rows = state.vector_seq, 0  # folded in: the tail starts again
        self.save_state(state)
        self._vectors = None
        for name in (TAIL_SEQS, TAIL_VECTORS):
            (self.root / name).unlink(missing_ok=True)

    # -- the tail: vectors past the FAISS index, append-only ------------------------------
    def tail_ok(self, state: IndexState, dim: int) -> bool:
        """Whether the tail files hold (at least) the rows state.json counts."""
        try:
            return ((self.root / TAIL_SEQS).stat().st_size >= 8 * state.tail_rows
                    and (self.root / TAIL_VECTORS).stat().st_size >= 4 * dim * state.tail_rows)
        except FileNotFoundError:
            return state.tail_rows == 0

    def tail_append(self, seqs: np.ndarray, vecs: np.ndarray, restart: bool = False) -> None:
        """Append packets (in seq order, all past the tail; `restart`: past the FAISS index,
        replacing the tail) to the tail files. state.json is written last: rows beyond its
        count (a torn append) are cut before the next one."""
        state = self.state()
        if restart:
            state.tail_rows = 0
        self.root.mkdir(parents=True, exist_ok=True)
        seqs = np.ascontiguousarray(seqs, dtype=np.int64)
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        for name, data, width in ((TAIL_SEQS, seqs, 8), (TAIL_VECTORS, vecs, 4 * vecs.shape[1])):
            with open(self.root / name, "ab") as fh:
                fh.truncate(state.tail_rows * width)
                fh.write(data.tobytes())
        state.tail_rows += len(seqs)
        state.tail_seq = int(seqs[-1])
        self.save_state(state)

    def tail_search(self, query: np.ndarray, k: int, state: IndexState) -> tuple[np.ndarray, np.ndarray] | None:
        """The k best of the tail by inner product; None when the tail files do not hold what
        state says (then the caller searches those packets in the database)."""
        if state.tail_rows == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        dim = int(query.shape[0])
        try:  # mapped, not read: at a million packets the tail may reach 50,000 rows
            seqs = np.memmap(self.root / TAIL_SEQS, dtype=np.int64, mode="r", shape=(state.tail_rows,))
            vecs = np.memmap(self.root / TAIL_VECTORS, dtype=np.float32, mode="r",
                             shape=(state.tail_rows, dim))
        except (OSError, ValueError):  # missing or shorter than state.json says
            return None
        scores = vecs @ query.astype(np.float32)
        top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return np.asarray(seqs[top]), scores[top]


    # -- keywords (tantivy BM25) ---------------------------------------------------------
    def _keyword_index(self):
        if self._kw is None:
            import tantivy

            builder = tantivy.SchemaBuilder()
            builder.add_integer_field("seq", stored=True, indexed=True, fast=True)
            builder.add_text_field("prose", stored=False, tokenizer_name="en_stem")
            builder.add_text_field("when", stored=False, tokenizer_name="default")
            for name in ("role", "session", "generation", "corpus"):
                builder.add_text_field(name, stored=False, tokenizer_name="raw")
            builder.add_integer_field("ts", stored=False, indexed=True, fast=True)
            self._kw = open_index(builder.build(), self.root / KEYWORD)
        return self._kw

    def keyword_current(self, state: IndexState) -> bool:
        return state.keyword_version == KEYWORD_VERSION

    def keyword_reset(self) -> None:
        """Drop a keyword index of another version; the caller re-adds every packet."""
        self._kw = None
        shutil.rmtree(self.root / KEYWORD, ignore_errors=True)
        state = self.state()
        state.keyword_seq, state.keyword_version = 0, KEYWORD_VERSION
        self.save_state(state)

    def keyword_add(self, rows: Iterable[dict], last_seq: int) -> None:
        import tantivy

        index = self._keyword_index()
        writer = index.writer(heap_size=64_000_000, num_threads=1)
        for row in rows:
            doc = tantivy.Document(seq=int(row["seq"]), prose=row["prose"], ts=int(row["ts_ms"]),
                                   when=date_words(int(row["ts_ms"])))
            for name in ("role", "session", "generation", "corpus"):
                if row.get(name):
                    doc.add_text(name, row[name])
            writer.add_document(doc)
        writer.commit()
        writer.wait_merging_threads()
        state = self.state()
        state.keyword_seq = last_seq
        self.save_state(state)

    def keyword_search(self, text: str, k: int, filters=None) -> tuple[list[int], list[float]]:
        import tantivy

        index = self._keyword_index()
        index.reload()
        query = parse_query(index, text, KEYWORD_FIELDS)
        clauses = [(tantivy.Occur.Must, query)]
        schema = index.schema
        if filters is not None:
            for name in ("role", "session", "generation", "corpus"):
                value = getattr(filters, name)
                if value is not None:
                    clauses.append((tantivy.Occur.Must, tantivy.Query.term_query(schema, name, value)))
            if filters.since is not None or filters.until is not None:
                lo = _ms(filters.since) if filters.since else -(2**62)
                hi = _ms(filters.until) if filters.until else 2**62
                clauses.append((tantivy.Occur.Must, tantivy.Query.range_query(
                    schema, "ts", tantivy.FieldType.Integer, lo, hi)))
        searcher = index.searcher()
        with user_query(text, KEYWORD_FIELDS):
            result = searcher.search(tantivy.Query.boolean_query(clauses), k)
        seqs, scores = [], []
        for score, address in result.hits:
            seqs.append(int(searcher.doc(address)["seq"][0]))
            scores.append(float(score))
        return seqs, scores


_MONTHS = ("january february march april may june july august september october november "
           "december").split()


def date_words(ts_ms: int) -> str:
    """A packet's UTC date as words a question uses: "28 may 2026"."""
    import datetime as dt

    day = dt.datetime.fromtimestamp(ts_ms / 1000, dt.timezone.utc)
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _ms(value) -> int:
    return int(value.timestamp() * 1000)
