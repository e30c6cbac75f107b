"""One corpus on disk (`corpora/NAME/`): its record and its two search indexes.

  manifest.json   source, file hashes, chunker and embedder ids, counts, skipped files
  chunks.parquet  every chunk (path, lines, heading, text, file hash) with its vector: the record
  vectors.faiss   FAISS, ids = chunk ids (exact below 100k chunks, IVF above), memory-mapped
  keyword/        tantivy BM25 over each chunk's text, storing what a hit shows

The indexes are a pure function of the sorted chunks, so an incremental refresh (which reads
and embeds only changed files) produces the same index as a fresh build of the same tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soulctl.corpus.chunk import Chunk
from soulctl.search import vectors
from soulctl.search.keyword import parse_query, user_query

MANIFEST = "manifest.json"
CHUNKS = "chunks.parquet"
VECTORS = "vectors.faiss"
KEYWORD = "keyword"


def chunk_id(chunk: Chunk) -> int:
    digest = hashlib.sha256(f"{chunk.path}\0{chunk.start}\0{chunk.end}\0{chunk.text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class ChunkTable:
    """Chunks in index order (path, start, end) with their vectors and file hashes."""

    ids: np.ndarray
    chunks: list[Chunk]
    file_sha: list[str]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.chunks)

    @staticmethod
    def build(chunks: list[Chunk], file_sha: list[str], vecs: np.ndarray) -> "ChunkTable":
        order = sorted(range(len(chunks)), key=lambda i: (chunks[i].path, chunks[i].start, chunks[i].end))
        ordered = [chunks[i] for i in order]
        return ChunkTable(np.array([chunk_id(c) for c in ordered], dtype=np.int64), ordered,
                          [file_sha[i] for i in order],
                          vecs[order] if len(order) else vecs.reshape(0, vecs.shape[-1] if vecs.ndim == 2 else 0))

    def without_paths(self, paths: set[str]) -> "ChunkTable":
        keep = [i for i, c in enumerate(self.chunks) if c.path not in paths]
        return ChunkTable(self.ids[keep], [self.chunks[i] for i in keep],
                          [self.file_sha[i] for i in keep], self.vectors[keep])

    @staticmethod
    def concat(a: "ChunkTable", b: "ChunkTable") -> "ChunkTable":
        vecs = np.vstack([a.vectors, b.vectors]) if len(a) and len(b) else (a.vectors if len(a) else b.vectors)
        return ChunkTable.build(a.chunks + b.chunks, a.file_sha + b.file_sha, vecs)


def write_corpus(directory: Path, table: ChunkTable, manifest: dict, dim: int) -> None:
    """Write record and indexes into `directory` (a fresh temporary directory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    flat = pa.array(np.ascontiguousarray(table.vectors, dtype=np.float32).ravel(), pa.float32())
    pq.write_table(pa.table({
        "id": pa.array(table.ids, pa.int64()),
        "path": [c.path for c in table.chunks],
        "start": pa.array([c.start for c in table.chunks], pa.int32()),
        "end": pa.array([c.end for c in table.chunks], pa.int32()),
        "heading": [c.heading for c in table.chunks],
        "text": [c.text for c in table.chunks],
        "file_sha": table.file_sha,
        "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
    }), directory / CHUNKS)

    index = vectors.new_index(dim, len(table), lambda n: table.vectors[
        np.random.default_rng(7).choice(len(table), n, replace=False)])
    vectors.add(index, table.ids, table.vectors)
    vectors.write(index, directory / VECTORS)

    kw = keyword_index(directory / KEYWORD)
    writer = kw.writer(heap_size=128_000_000, num_threads=1)
    import tantivy

    for cid, chunk in zip(table.ids.tolist(), table.chunks):
        writer.add_document(tantivy.Document(
            id=cid, body=chunk.embed_text(), path=chunk.path, start=chunk.start, end=chunk.end,
            heading=chunk.heading, text=chunk.text))
    writer.commit()
    writer.wait_merging_threads()
    manifest["vector_kind"] = vectors.kind(index)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def read_table(directory: Path) -> ChunkTable:
    import pyarrow.parquet as pq

    t = pq.read_table(directory / CHUNKS)
    if t.num_rows == 0:
        return ChunkTable(np.zeros(0, np.int64), [], [], np.zeros((0, 0), np.float32))
    vec_col = t.column("vector").combine_chunks()
    dim = vec_col.type.list_size
    vecs = vec_col.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
    paths, starts, ends = t.column("path").to_pylist(), t.column("start").to_pylist(), t.column("end").to_pylist()
    headings, texts = t.column("heading").to_pylist(), t.column("text").to_pylist()
    chunks = [Chunk(p, s, e, h, x) for p, s, e, h, x in zip(paths, starts, ends, headings, texts)]
    return ChunkTable(t.column("id").to_numpy(), chunks, t.column("file_sha").to_pylist(), vecs)


def keyword_index(path: Path):
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("id", stored=True, indexed=True, fast=True)
    builder.add_text_field("body", stored=False, tokenizer_name="en_stem")
    builder.add_text_field("path", stored=True, tokenizer_name="raw")
    builder.add_integer_field("start", stored=True)
    builder.add_integer_field("end", stored=True)
    builder.add_text_field("heading", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("text", stored=True, tokenizer_name="raw", index_option="basic")
    from soulctl.search.keyword import open_index

    return open_index(builder.build(), path)


class MountedCorpus:
    """A corpus opened for search: memory-mapped vectors and a tantivy reader; nothing copied."""

    def __init__(self, name: str, directory: Path):
        self.name = name
        self.directory = directory
        self.manifest = json.loads((directory / MANIFEST).read_text())
        self.vectors = vectors.open_mapped(directory / VECTORS)
        self.keyword = keyword_index(directory / KEYWORD)
        self.searcher = self.keyword.searcher()

    def search_vector(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        ids, scores = vectors.search(self.vectors, query, k)
        return list(zip(ids.tolist(), scores.tolist()))

    def search_keyword(self, text: str, k: int) -> list[tuple[int, float]]:
        with user_query(text, ["body"]):
            query = parse_query(self.keyword, text, ["body"])
            result = self.searcher.search(query, k)
        return [(int(self.searcher.doc(addr)["id"][0]), float(score)) for score, addr in result.hits]

    def chunks(self, ids: list[int]) -> dict[int, dict]:
        import tantivy

        if not ids:
            return {}
        query = tantivy.Query.term_set_query(self.keyword.schema, "id", list(ids))
        result = self.searcher.search(query, len(ids))
        out = {}
        for _, addr in result.hits:
            doc = self.searcher.doc(addr)
            cid = int(doc["id"][0])
            out[cid] = {"id": cid, "path": doc["path"][0], "start": int(doc["start"][0]),
                        "end": int(doc["end"][0]), "heading": doc["heading"][0], "text": doc["text"][0]}
        return out


def swap_into_place(tmp: Path, target: Path) -> None:
    """Replace `target` with `tmp` (two renames; a crash between them is undone on next use)."""
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    if target.exists():
        os.rename(target, old)
    os.rename(tmp, target)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def recover(directory: Path) -> None:
    """Undo a swap interrupted between its two renames."""
    if directory.exists():
        return
    for old in sorted(directory.parent.glob(f".old-{directory.name}-*")):
        os.rename(old, directory)
        return
