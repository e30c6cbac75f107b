"""Corpus mounts as the commands use them: add, refresh, list, use/off, remove, search, and
`retrieve` for the Memory OS's retrieved sector. Library code: no typer, no rich."""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from soulctl.corpus import index as ix
from soulctl.corpus.chunk import CHUNKER_ID, Chunk, chunk_file
from soulctl.corpus.walk import DEFAULT_MAX_BYTES, read_text, walk
from soulctl.errors import AlreadyExists, InvalidInput, NotFound
from soulctl.home import Home
from soulctl.progress import progress_task
from soulctl.search.fusion import rrf

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MOUNTS = "mounts.json"


def check_name(name: str) -> str:
    if not _NAME.match(name) or ".." in name:
        raise InvalidInput(f"bad corpus name {name!r}",
                           hint="use letters, digits, '.', '_' or '-' (no '/', no '..'), at most 64")
    return name


def corpus_dir(home: Home, name: str) -> Path:
    return home.corpora / check_name(name)


def existing(home: Home, name: str) -> Path:
    directory = corpus_dir(home, name)
    ix.recover(directory)
    if not (directory / ix.MANIFEST).is_file():
        known = ", ".join(names(home)) or "none"
        raise NotFound(f"no corpus {name!r}", hint=f"corpora: {known}; add one with `soulctl mount add NAME PATH`")
    return directory


def names(home: Home) -> list[str]:
    if not home.corpora.is_dir():
        return []
    return sorted(p.name for p in home.corpora.iterdir()
                  if not p.name.startswith(".") and (p / ix.MANIFEST).is_file())


@dataclass
class IndexReport:
    name: str
    source: str
    files: int
    chunks: int
    skipped: dict[str, int]
    skipped_files: list[dict]
    read: list[str] = field(default_factory=list)  # files opened and (re)chunked
    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0


def _source_dir(path: str | Path) -> Path:
    source = Path(path).expanduser()
    if not source.exists():
        raise NotFound(f"corpus path {source} does not exist")
    if not source.is_dir():
        raise InvalidInput(f"corpus path {source} is a file, not a directory",
                           hint="mount a directory or a git repository")
    return source.resolve()


def _chunk_files(files, progress) -> tuple[list[Chunk], list[str], dict, list[dict]]:
    """Read and chunk files; returns chunks, their file hashes, per-file records, not-UTF-8 skips."""
    chunks: list[Chunk] = []
    shas: list[str] = []
    records: dict[str, dict] = {}
    skipped: list[dict] = []
    with progress_task(progress, "Chunking files", len(files)) as task:
        for f in files:
            text = read_text(f.path)
            task.advance(1)
            if text is None:  # stat kept, so a refresh need not read it again
                skipped.append({"rel": f.rel, "reason": "not-utf8", "size": f.size, "mtime_ns": f.mtime_ns})
                continue
            sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
            parts = chunk_file(f.rel, text)
            chunks += parts
            shas += [sha] * len(parts)
            records[f.rel] = {"sha256": sha, "size": f.size, "mtime_ns": f.mtime_ns, "chunks": len(parts)}
    return chunks, shas, records, skipped


def _embed(embedder, chunks: list[Chunk], progress) -> np.ndarray:
    vecs = embedder.encode([c.embed_text() for c in chunks], progress)
    return vecs.reshape(len(chunks), embedder.dim)


def _manifest(name: str, source: Path, embedder, records: dict, skipped: list[dict],
              created: str | None = None) -> dict:
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    reasons: dict[str, int] = {}
    for s in skipped:
        reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
    return {"name": name, "source": str(source), "created_at": created or now, "updated_at": now,
            "chunker": CHUNKER_ID, "embedder": {"model_id": embedder.model_id, "dim": embedder.dim},
            "files": records, "skipped": skipped,
            "counts": {"files": len(records), "chunks": sum(r["chunks"] for r in records.values()),
                       "skipped": reasons}}


def add(home: Home, name: str, path: str | Path, embedder, progress=None,
        max_bytes: int = DEFAULT_MAX_BYTES) -> IndexReport:
    directory = corpus_dir(home, name)
    ix.recover(directory)
    if directory.exists():
        raise AlreadyExists(f"corpus {name!r} already exists",
                            hint=f"`soulctl mount refresh {name}` updates it; `mount rm {name}` removes it")
    source = _source_dir(path)
    files, walk_skipped = walk(source, max_bytes)
    chunks, shas, records, utf_skipped = _chunk_files(files, progress)
    skipped = [{"rel": s.rel, "reason": s.reason} for s in walk_skipped] + utf_skipped
    table = ix.ChunkTable.build(chunks, shas, _embed(embedder, chunks, progress))
    manifest = _manifest(name, source, embedder, records, skipped)
    _write(home, directory, table, manifest, embedder.dim)
    return IndexReport(name, str(source), len(records), len(table), manifest["counts"]["skipped"],
                       skipped, read=sorted(records), added=len(records))


def _write(home: Home, directory: Path, table, manifest: dict, dim: int) -> None:
    home.corpora.mkdir(parents=True, exist_ok=True)
    tmp = home.corpora / f".tmp-{directory.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        ix.write_corpus(tmp, table, manifest, dim)
        ix.swap_into_place(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def refresh(home: Home, name: str, embedder, progress=None, full: bool = False,
            max_bytes: int = DEFAULT_MAX_BYTES) -> IndexReport:
    """Re-read only files whose content changed; drop chunks of deleted files."""
    directory = existing(home, name)
    manifest = json.loads((directory / ix.MANIFEST).read_text())
    source = _source_dir(manifest["source"])
    same_setup = (manifest.get("chunker") == CHUNKER_ID
                  and manifest.get("embedder", {}).get("model_id") == embedder.model_id)
    old_records: dict = manifest.get("files", {}) if same_setup and not full else {}
    files, walk_skipped = walk(source, max_bytes)
    present = {f.rel for f in files}
    old_unreadable = {s["rel"]: s for s in manifest.get("skipped", [])
                      if s["reason"] == "not-utf8"} if old_records else {}
    unchanged, to_read, still_unreadable = {}, [], []
    for f in files:
        old = old_records.get(f.rel) or old_unreadable.get(f.rel)
        if old and old["size"] == f.size and old["mtime_ns"] == f.mtime_ns:
            if f.rel in old_records:  # stat says unchanged, as git's index does
                unchanged[f.rel] = old
            else:
                still_unreadable.append(old)
        else:
            to_read.append(f)
    chunks, shas, records, utf_skipped = _chunk_files(to_read, progress)
    utf_skipped += still_unreadable
    changed = [r for r in records if r in old_records]
    # a touched file whose content is the same keeps its chunks (and vectors)
    same = {r for r in changed if records[r]["sha256"] == old_records[r]["sha256"]}
    keep_paths = set(unchanged) | same
    table = ix.read_table(directory) if old_records else None
    drop = {c.path for c in table.chunks} - keep_paths if table is not None else set()
    kept = table.without_paths(drop) if table is not None else None
    fresh_chunks = [c for c in chunks if c.path not in same]
    fresh_shas = [s for c, s in zip(chunks, shas) if c.path not in same]
    fresh = ix.ChunkTable.build(fresh_chunks, fresh_shas, _embed(embedder, fresh_chunks, progress))
    merged = ix.ChunkTable.concat(kept, fresh) if kept is not None else fresh
    all_records = {**unchanged, **records}
    for rel in same:
        all_records[rel] = {**records[rel], "chunks": old_records[rel]["chunks"]}
    skipped = [{"rel": s.rel, "reason": s.reason} for s in walk_skipped] + utf_skipped
    new_manifest = _manifest(name, source, embedder, all_records, skipped, manifest.get("created_at"))
    _write(home, directory, merged, new_manifest, embedder.dim)
    return IndexReport(name, str(source), len(all_records), len(merged),
                       new_manifest["counts"]["skipped"], skipped, read=sorted(f.rel for f in to_read),
                       added=len([r for r in records if r not in old_records]),
                       changed=len([r for r in changed if r not in same]),
                       deleted=len(set(old_records) - present), unchanged=len(keep_paths))


def info(home: Home, name: str) -> dict:
    directory = existing(home, name)
    manifest = json.loads((directory / ix.MANIFEST).read_text())
    size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    return {"name": name, "source": manifest["source"], "files": manifest["counts"]["files"],
            "chunks": manifest["counts"]["chunks"], "skipped": manifest["counts"]["skipped"],
            "bytes": size, "mounted": name in mounted(home), "updated_at": manifest["updated_at"],
            "embedder": manifest["embedder"]["model_id"], "vector_kind": manifest.get("vector_kind")}


# -- the outfit: which corpora are mounted ---------------------------------------------------
@contextmanager
def _mounts_lock(home: Home):
    home.data.mkdir(parents=True, exist_ok=True)
    fd = os.open(home.data / "mounts.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def mounted(home: Home) -> list[str]:
    path = home.data / MOUNTS
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text()).get("mounted", []))
    except json.JSONDecodeError:
        return []


def _set_mounted(home: Home, names_: list[str]) -> None:
    path = home.data / MOUNTS
    tmp = path.with_name(f".{MOUNTS}.{os.getpid()}")
    tmp.write_text(json.dumps({"mounted": names_}) + "\n")
    os.replace(tmp, path)


def use(home: Home, wanted: Sequence[str], add_to: bool = False) -> list[str]:
    for name in wanted:
        existing(home, name)
    with _mounts_lock(home):
        current = mounted(home) if add_to else []
        outfit = current + [n for n in wanted if n not in current]
        _set_mounted(home, outfit)
    return outfit


def off(home: Home, name: str | None = None) -> list[str]:
    with _mounts_lock(home):
        current = mounted(home)
        if name is not None and name not in current:
            raise NotFound(f"corpus {name!r} is not mounted", hint=f"mounted: {', '.join(current) or 'none'}")
        outfit = [] if name is None else [n for n in current if n != name]
        _set_mounted(home, outfit)
    return outfit


def remove(home: Home, name: str) -> None:
    directory = existing(home, name)
    with _mounts_lock(home):
        _set_mounted(home, [n for n in mounted(home) if n != name])
    trash = directory.with_name(f".rm-{name}-{os.getpid()}")
    os.rename(directory, trash)
    shutil.rmtree(trash)


# -- search ------------------------------------------------------------------------------------
@dataclass
class CorpusHit:
    corpus: str
    path: str
    start: int
    end: int
    heading: str
    text: str
    score: float
    ranks: dict[str, int]

    @property
    def cite(self) -> str:
        return f"{self.path}:{self.start}-{self.end}"

    def as_dict(self) -> dict:
        return {"corpus": self.corpus, "path": self.path, "start": self.start, "end": self.end,
                "cite": self.cite, "heading": self.heading, "text": self.text,
                "score": round(self.score, 6), "ranks": self.ranks}


class Wardrobe:
    """Opened corpora, cached by directory state: switching outfits in a long-running
    process costs a dictionary lookup once each corpus has been opened (milliseconds)."""

    def __init__(self, home: Home):
        self.home = home
        self._open: dict[str, tuple[tuple, ix.MountedCorpus]] = {}

    def corpus(self, name: str) -> ix.MountedCorpus:
        directory = existing(self.home, name)
        st = (directory / ix.MANIFEST).stat()
        stamp = (st.st_mtime_ns, st.st_ino)
        cached = self._open.get(name)
        if cached is None or cached[0] != stamp:
            self._open[name] = (stamp, ix.MountedCorpus(name, directory))
        return self._open[name][1]

    def search(self, query: str, embedder, k: int = 10, corpora: Sequence[str] | None = None,
               mode: str = "hybrid", query_vector: np.ndarray | None = None) -> list[CorpusHit]:
        targets = list(corpora) if corpora else mounted(self.home)
        if not targets:
            raise NotFound("no corpus is mounted", hint="`soulctl mount use NAME`, or pass --corpus NAME")
        if not query.strip():
            raise InvalidInput("empty search query")
        opened = [self.corpus(name) for name in targets]
        for corpus in opened:
            if corpus.manifest["embedder"]["model_id"] != embedder.model_id:
                raise InvalidInput(f"corpus {corpus.name!r} was indexed with "
                                   f"{corpus.manifest['embedder']['model_id']}, not {embedder.model_id}",
                                   hint=f"rebuild it: soulctl mount refresh {corpus.name} --full")
        depth = max(k * 4, 40) if mode == "hybrid" else k
        if mode != "keyword" and query_vector is None:
            query_vector = embedder.encode_queries([query])[0]
        rankings: dict[str, list] = {}
        for corpus in opened:
            if mode != "keyword":
                rankings[f"{corpus.name}:semantic"] = [((corpus.name, i), s) for i, s in
                                                       corpus.search_vector(query_vector, depth)]
            if mode != "semantic":
                rankings[f"{corpus.name}:keyword"] = [((corpus.name, i), s) for i, s in
                                                      corpus.search_keyword(query, depth)]
        fused = rrf(rankings, k)
        by_corpus: dict[str, list[int]] = {}
        for (name, cid), *_ in fused:
            by_corpus.setdefault(name, []).append(cid)
        details = {name: self.corpus(name).chunks(ids) for name, ids in by_corpus.items()}
        hits = []
        for (name, cid), score, ranks, _scores in fused:
            d = details[name].get(cid)
            if d is not None:
                hits.append(CorpusHit(name, d["path"], d["start"], d["end"], d["heading"], d["text"],
                                      score, {k_.split(":", 1)[1]: v for k_, v in ranks.items()}))
        return hits


def retrieve(home: Home, query: str, embedder, token_budget: int, count_tokens: Callable[[str], int],
             wardrobe: Wardrobe | None = None, k: int = 20,
             query_vector: np.ndarray | None = None) -> list[CorpusHit]:
    """Hits for the Memory OS's retrieved sector: best first, as many as fit `token_budget`
    when each is rendered as `[corpus] path:start-end` + its text, counted by the caller's
    tokenizer (the serving model's)."""
    if not mounted(home) or token_budget <= 0:
        return []
    wardrobe = wardrobe or Wardrobe(home)
    chosen, used = [], 0
    for hit in wardrobe.search(query, embedder, k, query_vector=query_vector):
        cost = count_tokens(render_hit(hit))
        if used + cost <= token_budget:
            chosen.append(hit)
            used += cost
    return chosen


def render_hit(hit: CorpusHit) -> str:
    return f"[{hit.corpus}] {hit.cite}" + (f" ({hit.heading})" if hit.heading else "") + f"\n{hit.text}\n"
