"""The bifocal packet (DESIGN §4): its types, ids, roles and the filters a query takes.

Packets are immutable once written; a correction is a new packet whose `corrects` names the
old one. Embeddings change only through `reembed`.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ROLES = ("user", "soul", "majordomo", "hands", "tool", "system", "peer")  # peer: another assistant, imported
MAX_PROSE_BYTES = 1_000_000  # one packet's text; larger input is refused, not truncated
MAX_DIM = 8192  # dimensions of any vector taken in (the largest embedders give 4096)

_uuid_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_id() -> str:
    """UUIDv7: 48-bit unix ms, then a 12-bit counter (monotonic within a process), then random."""
    global _last_ms, _counter
    with _uuid_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:
                ms += 1
                _counter = 0
        else:
            _counter = secrets.randbits(8)
        _last_ms = ms
        rand = secrets.randbits(62)
        value = (ms << 80) | (0x7 << 76) | (_counter << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))


def check_vectors(values, dim: int | None = None, what: str = "embedding"):
    """`values` (one vector, or a batch of rows) as float32, refused unless every number is
    finite *as float32* (1e39 is infinity there), non-empty, at most MAX_DIM wide and, when
    `dim` is given, exactly that wide. Every vector that enters the log passes here."""
    import numpy as np

    from soulctl.errors import InvalidInput

    try:
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"`{what}` must be a list of numbers") from None
    width = array.shape[-1] if array.ndim else 0
    if array.ndim not in (1, 2) or width == 0:
        raise InvalidInput(f"`{what}` must be a non-empty list of numbers")
    if width > MAX_DIM:
        raise InvalidInput(f"`{what}` has {width} dimensions, over the limit of {MAX_DIM}")
    if dim is not None and width != dim:
        raise InvalidInput(f"`{what}` has {width} dimensions; the log's embedder gives {dim}")
    if not np.isfinite(array).all():
        raise InvalidInput(f"`{what}` holds a value that is not a finite 32-bit number (NaN, infinity, "
                           "or beyond ±3.4e38)")
    return array


def new_session_id() -> str:
    return "s-" + new_id()[:8] + new_id()[-4:]


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


@dataclass
class NewPacket:
    """A packet before it is written: everything but its id, sequence and embedding."""

    prose: str
    role: str = "user"
    session: str = "default"
    meta: dict[str, Any] | None = None
    parent: str | None = None
    corrects: str | None = None
    generation: str | None = None
    corpus: str | None = None
    resonance: float | None = None
    resonance_source: str | None = None
    ts: _dt.datetime | None = None
    id: str | None = None


@dataclass
class Packet:
    id: str
    seq: int
    ts: _dt.datetime
    session: str
    role: str
    prose: str
    embed_model: str
    generation: str | None = None
    corpus: str | None = None
    resonance: float | None = None
    resonance_source: str | None = None
    parent: str | None = None
    corrects: str | None = None
    meta: dict[str, Any] | None = None
    embedding: list[float] | None = None

    def as_dict(self, with_embedding: bool = False) -> dict:
        data = {k: getattr(self, k) for k in (
            "id", "seq", "ts", "session", "role", "prose", "meta", "parent", "corrects",
            "generation", "corpus", "resonance", "resonance_source", "embed_model")}
        if isinstance(data["ts"], _dt.datetime):
            data["ts"] = data["ts"].isoformat()
        if with_embedding and self.embedding is not None:
            data["embedding"] = [float(x) for x in self.embedding]
        return data


@dataclass
class Filters:
    role: str | None = None
    session: str | None = None
    since: _dt.datetime | None = None
    until: _dt.datetime | None = None
    generation: str | None = None
    corpus: str | None = None
    min_resonance: float | None = None
    speaker: str | None = None  # meta.speaker: who said it, where several people talk

    def active(self) -> bool:
        return any(v is not None for v in self.__dict__.values())


@dataclass
class Hit:
    id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


def env_session() -> str | None:
    return os.environ.get("SOUL_SESSION") or None
