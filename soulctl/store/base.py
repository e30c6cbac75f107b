"""The backend-neutral log store: packets, filters, and the interface every backend implements.

DESIGN §4 (the bifocal packet) and §11: DuckDB now, PostgreSQL + pgvector later, behind the
same methods. Packets are immutable once written; a correction is a new packet whose
`corrects` names the old one. Embeddings change only through `reembed`.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

ROLES = ("user", "soul", "majordomo", "hands", "tool", "system")
MAX_PROSE_BYTES = 1_000_000  # one packet's text; larger input is refused, not truncated

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

    def active(self) -> bool:
        return any(v is not None for v in self.__dict__.values())


@dataclass
class Hit:
    id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


class Store(ABC):
    """What the rest of soulctl may ask of the log. Backends: duckdb (default), postgres."""

    @abstractmethod
    def embedder_record(self) -> tuple[str, int] | None:
        """(model id, dimension) the stored vectors were made with; None when empty."""

    @abstractmethod
    def add(self, packets: Sequence[NewPacket], embeddings: np.ndarray, embed_model: str) -> list[Packet]:
        """Write whole packets atomically (all of them or none)."""

    def add_then_index(self, packets: Sequence[NewPacket], embeddings: np.ndarray,
                       embed_model: str) -> list[Packet]:
        """Like add, but a backend may return once the packets are committed and bring its
        indexes up afterwards (settle() waits for that)."""
        return self.add(packets, embeddings, embed_model)

    def settle(self) -> None:
        """Wait for any work add_then_index left running."""

    @abstractmethod
    def get(self, packet_id: str, with_embedding: bool = False) -> Packet: ...

    @abstractmethod
    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` that name packets in the log."""

    @abstractmethod
    def list(self, filters: Filters, limit: int | None = None, newest_first: bool = True) -> Iterator[Packet]: ...

    @abstractmethod
    def count(self, filters: Filters | None = None) -> int: ...

    @abstractmethod
    def search(self, vector: np.ndarray | None, text: str | None, k: int, filters: Filters,
               depth: int | None = None) -> list[tuple[Packet, Hit]]:
        """Rank packets by `vector` (semantic), `text` (BM25) or both (reciprocal rank fusion).

        A backend answers in one pass over its own indexes (FAISS + tantivy here, pgvector +
        full-text in PostgreSQL) and returns whole packets, best first.
        """

    @abstractmethod
    def sql(self, query: str) -> tuple[list[str], list[tuple]]: ...

    @abstractmethod
    def export(self, fmt: str, path: str, with_embeddings: bool = False) -> int: ...

    @abstractmethod
    def reembed(self, encode, embed_model: str, dim: int, progress=None) -> int: ...

    @abstractmethod
    def mark(self, packet_id: str, score: float, source: str) -> None:
        """Record a resonance mark (a separate record; the packet itself never changes)."""


def env_session() -> str | None:
    return os.environ.get("SOUL_SESSION") or None
