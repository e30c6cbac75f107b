"""FAISS index files extended as a stream: the old file's bytes copied, the new vectors written
into place, never the whole index in memory.

FAISS adds to an index it holds in memory, so extending a log's index the plain way costs its
whole size in RAM (1.5 KB a packet: 750 MB at half a million) in the writer — an import of a
large export would grow with the log. These writers produce the very bytes `faiss.write_index`
writes for the old index plus the new vectors (tests compare them byte for byte), holding only
a chunk of vectors and an id and list number per new vector. Two layouts, the ones
`vectors.new_index` makes:

    flat: IxM2 header | IxFI header | codes (count, floats) | ids (count, int64)
    IVF:  IwFl header, nlist, nprobe | quantizer (IxFI) | direct map (none) |
          ilar, nlist, code size, "full" sizes | per list: codes, then ids

`Chunks` is a fresh pass over (ids, vectors) in order each time it is called: the IVF writer
reads the new vectors twice (once to count each list, once to write), not holding them.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

Chunks = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]

HEADER = 33  # d (i32), ntotal (i64), two dummies (i64), is_trained (u8), metric (i32)
COPY = 1 << 24  # bytes copied at once


class Unreadable(ValueError):
    """A file that is not a layout these writers know (the caller writes the index anew from
    every vector, still as a stream)."""


def extend(path: Path | None, out: Path, new: Chunks, trained=None, dim: int | None = None) -> int:
    """Write to `out` the index at `path` with the vectors of `new` added; `trained`: an
    empty trained IVF index to start from instead, `path` None and `dim` given: an empty
    exact one. Returns the new total."""
    import faiss

    if trained is not None:
        return _ivf(faiss.serialize_index(trained).tobytes(), None, trained.quantizer, new, out)
    if path is None:
        return _flat(io.BytesIO(faiss.serialize_index(faiss.IndexIDMap2(faiss.IndexFlatIP(dim))).tobytes()),
                     new, out)
    with open(path, "rb") as fh:
        kind = fh.read(4)
        if kind == b"IxM2":
            fh.seek(0)
            return _flat(fh, new, out)
    if kind == b"IwFl":
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
        return _ivf(None, Path(path), index.quantizer, new, out)
    raise Unreadable(f"{path}: an index kind these writers do not extend ({kind!r})")


def kind(path: Path) -> str:
    with open(path, "rb") as fh:
        return "ivf" if fh.read(4) == b"IwFl" else "flat"


# -- training sample --------------------------------------------------------------------
def sample(chunks: Chunks, n: int, total: int, dim: int) -> np.ndarray:
    """About `n` of the vectors, chosen by their seq's hash (the same ones every time), read a
    chunk at a time into one array (a reservoir sample in the database, or joining the chunks'
    picks, would hold the sample twice)."""
    cut = min(1.0, n / max(total, 1)) * 2**32
    out = np.empty((min(total, n + 8 * int(np.sqrt(n)) + 64), dim), dtype=np.float32)  # room for the hash's spread
    filled = 0
    for seqs, vecs in chunks():
        picked = vecs[(seqs.astype(np.uint64) * np.uint64(0x9E3779B1)) % np.uint64(2**32) < cut]
        take = min(len(picked), len(out) - filled)
        out[filled:filled + take] = picked[:take]
        filled += take
    return out[:filled]


# -- flat ---------------------------------------------------------------------------------
def _flat(old, new: Chunks, out: Path) -> int:
    """`old`: the old index, an open binary file (or an empty one's bytes)."""
    head = old.read(2 * (4 + HEADER))
    if head[4 + HEADER:4 + HEADER + 4] != b"IxFI":
        raise Unreadable("not a flat index under an id map")
    dim, total = struct.unpack_from("<iq", head, 4)
    (floats,) = struct.unpack("<Q", old.read(8))
    if floats != total * dim:
        raise Unreadable(f"{floats} floats for {total} vectors")
    codes_at = len(head) + 8
    ids_at = codes_at + 4 * floats + 8
    added, new_ids = 0, []
    with open(out, "wb") as fh:
        fh.write(head + struct.pack("<Q", 0))
        _copy(old, fh, codes_at, 4 * floats)
        for ids, vecs in new():
            fh.write(_rows(vecs, dim).tobytes())
            new_ids.append(np.asarray(ids, dtype=np.int64))
            added += len(ids)
        fh.write(struct.pack("<Q", total + added))
        _copy(old, fh, ids_at, 8 * total)
        for ids in new_ids:
            fh.write(ids.tobytes())
        n = total + added
        for at in (8, 4 + HEADER + 8):  # the id map's ntotal and the flat index's
            fh.seek(at)
            fh.write(struct.pack("<q", n))
        fh.seek(len(head))
        fh.write(struct.pack("<Q", n * dim))
    return n


# -- IVF ----------------------------------------------------------------------------------
def _ivf(prefix: bytes | None, path: Path | None, quantizer, new: Chunks, out: Path) -> int:
    """`prefix`: a serialized empty index (its lists section is replaced); else `path`'s."""
    old = open(path, "rb") if path is not None else None
    try:
        if old is not None:
            prefix, old_sizes, lists_at = _ivf_layout(old)
        else:
            prefix = prefix[:prefix.rindex(b"ilar")]
        dim, total = struct.unpack_from("<iq", prefix, 4)
        (nlist,) = struct.unpack_from("<Q", prefix, 4 + HEADER)
        if old is None:
            old_sizes, lists_at = np.zeros(nlist, dtype=np.int64), 0
        code = 4 * dim
        lists, ids = [], []  # pass 1: each new vector's list
        for chunk_ids, vecs in new():
            lists.append(quantizer.assign(_rows(vecs, dim), 1).ravel().astype(np.int32))
            ids.append(np.asarray(chunk_ids, dtype=np.int64))
        lists = np.concatenate(lists) if lists else np.zeros(0, np.int32)
        ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        sizes = old_sizes + np.bincount(lists, minlength=nlist)
        n = int(old_sizes.sum()) + len(ids)
        section = (b"ilar" + struct.pack("<QQ", nlist, code) + b"full" + struct.pack("<Q", nlist)
                   + sizes.astype("<u8").tobytes())
        start = len(prefix) + len(section) + np.concatenate([[0], np.cumsum(sizes * (code + 8))[:-1]])
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.pwrite(fd, prefix[:8] + struct.pack("<q", n) + prefix[16:] + section, 0)
            old_at = lists_at
            for i in np.flatnonzero(old_sizes):  # the old lists, copied where they now begin
                k = int(old_sizes[i])
                _copy_fd(old, fd, old_at, int(start[i]), k * code)
                _copy_fd(old, fd, old_at + k * code, int(start[i] + sizes[i] * code), 8 * k)
                old_at += k * (code + 8)
            order = np.argsort(lists, kind="stable")  # the new ids, each list's after its old
            bounds = np.searchsorted(lists[order], np.arange(nlist + 1))
            for i in np.flatnonzero(np.diff(bounds)):
                os.pwrite(fd, ids[order[bounds[i]:bounds[i + 1]]].tobytes(),
                          int(start[i] + sizes[i] * code + old_sizes[i] * 8))
            cursor = start + old_sizes * code  # pass 2: the new vectors, written into place
            done = 0
            for _, vecs in new():
                rows = _rows(vecs, dim)
                where = lists[done:done + len(rows)]
                done += len(rows)
                by_list = np.argsort(where, kind="stable")
                cuts = np.flatnonzero(np.diff(where[by_list])) + 1
                for group in np.split(by_list, cuts):
                    if len(group):
                        i = where[group[0]]
                        os.pwrite(fd, rows[group].tobytes(), int(cursor[i]))
                        cursor[i] += len(group) * code
            if done != len(lists):
                raise RuntimeError(f"the vectors changed between passes ({done} then {len(lists)})")
        finally:
            os.close(fd)
        return n
    finally:
        if old is not None:
            old.close()


def _ivf_layout(fh) -> tuple[bytes, np.ndarray, int]:
    """(the bytes before the lists section, each list's size, where the lists' data begins)."""
    head = fh.read(4 + HEADER + 16 + 4 + HEADER + 8)
    dim = struct.unpack_from("<i", head, 4)[0]
    if head[4 + HEADER + 16:4 + HEADER + 20] != b"IxFI":
        raise Unreadable("an IVF index whose quantizer is not flat")
    (floats,) = struct.unpack_from("<Q", head, len(head) - 8)
    fh.seek(len(head) + 4 * floats)
    dm = fh.read(9)
    if dm != b"\x00" + bytes(8):
        raise Unreadable("an IVF index written with a direct map")
    at = len(head) + 4 * floats + 9
    fh.seek(0)
    prefix = fh.read(at)
    section = fh.read(4 + 16 + 4 + 8)
    if section[:4] != b"ilar":
        raise Unreadable("an IVF index whose lists are not stored in it")
    nlist, code = struct.unpack_from("<QQ", section, 4)
    if code != 4 * dim:
        raise Unreadable("an IVF index whose codes are not float vectors")
    kind, (count,) = section[20:24], struct.unpack_from("<Q", section, 24)
    raw = np.frombuffer(fh.read(8 * count), dtype="<u8").astype(np.int64)
    if kind == b"full":
        sizes = raw
    elif kind == b"sprs":
        sizes = np.zeros(nlist, dtype=np.int64)
        sizes[raw[0::2]] = raw[1::2]
    else:
        raise Unreadable(f"an IVF lists section of kind {kind!r}")
    return prefix, sizes, at + len(section) + 8 * count


# -- bytes ----------------------------------------------------------------------------------
def _rows(vecs: np.ndarray, dim: int) -> np.ndarray:
    rows = np.ascontiguousarray(vecs, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise ValueError(f"vectors of shape {rows.shape} for an index of width {dim}")
    return rows


def _copy(src, dst, at: int, size: int) -> None:
    """`size` bytes of `src` from `at` appended to `dst` (kernel-side where it can)."""
    dst.flush()
    _copy_fd(src, dst.fileno(), at, dst.tell(), size)
    dst.seek(0, os.SEEK_END)


def _copy_fd(src, fd: int, at: int, to: int, size: int) -> None:
    while size > 0:
        try:
            done = os.copy_file_range(src.fileno(), fd, min(size, COPY), at, to)
        except OSError:
            done = os.pwrite(fd, os.pread(src.fileno(), min(size, COPY), at), to)
        if done <= 0:
            raise OSError(f"copying an index file stopped with {size} bytes to go")
        at, to, size = at + done, to + done, size - done
