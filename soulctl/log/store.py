"""The Store interface: every call anyone makes of the log, declared in full (DESIGN §11), as a
core (packets and the candidates of a search) and small protocols beside it — marks, memory
versions, the user's SQL and export, migration.

Backends live in their own folders (log/duckdb/, log/postgres/); nothing outside them
names a backend or writes SQL, so a backend is added without touching evolve/ or memory/.
"""

from __future__ import annotations

import contextlib

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ContextManager, Iterator, Protocol, Sequence

import numpy as np

from soulctl.errors import InvalidInput
from soulctl.log.packets import Filters, Hit, NewPacket, Packet

SQL_TIMEOUT = 30.0  # seconds a user's `log sql` may run (a writer waits at most that long)


def embedder_mismatch(stored: str, configured: str) -> InvalidInput:
    return InvalidInput(f"the log's vectors were made by {stored}, but the configured embedder "
                        f"is {configured}", hint="run `soulctl log reembed` to re-embed the log")


class WriteInterrupted(KeyboardInterrupt):
    """Ctrl-C that arrived while a write finished (see `soulctl.interrupts`): the packets it
    committed ride on it, so the caller can say exactly what is in the log."""

    def __init__(self, committed: list):
        super().__init__()
        self.committed = committed


@dataclass(frozen=True)
class Turn:
    """What the re-ranking reads of a candidate or a turn beside it (Candidates.turns): the
    whole packet and its stored vector."""
    packet: Packet
    vector: np.ndarray

    @property
    def session(self) -> str:
        return self.packet.session

    @property
    def prose(self) -> str:
        return self.packet.prose

    @property
    def speaker(self) -> str | None:
        return (self.packet.meta or {}).get("speaker")

    @property
    def day(self) -> dt.date:
        return self.packet.ts.date()


class Candidates(Protocol):
    """What a backend supplies to the ranking, read consistently for one search: each ranking
    as (seq, score) best first, the turns beside a hit, packets by seq, the log's first and last
    dates, the speakers it holds (meta.speaker), and the turns the re-ranking reads."""

    def rankings(self, vector: np.ndarray | None, text: str | None, depth: int,
                 filters: Filters) -> dict[str, list[tuple[int, float]]]: ...

    def neighbours(self, seqs: list[int], filters: Filters) -> dict[int, list[int]]: ...

    def by_seq(self, seqs: list[int]) -> dict[int, Packet]: ...

    def turns(self, seqs: list[int]) -> dict[int, Turn]: ...  # the seqs and the seqs ± 1

    def bounds(self): ...  # (first, last) packet dates, or None when empty

    def speakers(self) -> set[str]: ...


class PacketStore(ABC):
    """The core: packets written, read, listed and searched (the candidates of a search)."""

    # -- the store itself ------------------------------------------------------------------
    @abstractmethod
    def create(self, embed_model: str, dim: int) -> None:
        """Make an empty store for vectors of `dim` from `embed_model` (init)."""

    @abstractmethod
    def embedder_record(self) -> tuple[str, int] | None:
        """(model id, dimension) the stored vectors were made with; None when empty."""

    # -- packets ---------------------------------------------------------------------------
    @abstractmethod
    def add(self, packets: Sequence[NewPacket], embeddings: np.ndarray, embed_model: str,
            index: bool = True) -> list[Packet]:
        """Write whole packets atomically (all of them or none). An id already in the log is
        AlreadyExists. `index=False` may defer index upkeep to a later reindex (bulk loads)."""

    def add_then_index(self, packets: Sequence[NewPacket], embeddings: np.ndarray,
                       embed_model: str) -> list[Packet]:
        """Like add, but a backend may return once the packets are committed and bring its
        indexes up afterwards (settle() waits for that)."""
        return self.add(packets, embeddings, embed_model)

    def settle(self) -> None:
        """Wait for any work add_then_index left running."""

    def bulk(self) -> ContextManager[None]:
        """Around a long run of adds (an import): a backend may bound the memory it keeps
        between them, so the writer stays flat however large the log grows."""
        return contextlib.nullcontext()

    @abstractmethod
    def get(self, packet_id: str, with_embedding: bool = False) -> Packet:
        """One packet by id or unique prefix (NotFound; an ambiguous prefix is InvalidInput)."""

    @abstractmethod
    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` that name packets in the log."""

    @abstractmethod
    def list(self, filters: Filters, limit: int | None = None, newest_first: bool = True) -> Iterator[Packet]: ...

    @abstractmethod
    def count(self, filters: Filters | None = None) -> int: ...

    # -- search: the candidates the shared ranking (log/rank.py) orders ------------------------
    @abstractmethod
    def candidates(self) -> ContextManager["Candidates | None"]:
        """A view of the log for one search, read consistently while it is open: the backend's
        own indexes' rankings with every filter pushed in, and the packets they name (FAISS +
        tantivy here, pgvector + full-text in PostgreSQL). None when the log is empty. The
        search runs top-down above it (log/search.py: parse → candidates → rank → fetch)."""

    @abstractmethod
    def reindex(self) -> dict:
        """Rebuild whatever derived indexes the backend keeps; returns at least `packets` and
        `vector_kind` (the vector index's kind), then the backend's own state."""

    def close(self) -> None:
        """Release connections (a backend with none keeps nothing open between calls)."""

    def stop(self, force: bool = False) -> dict:
        """Stop a server of the home's own that holds the store (the embedded PostgreSQL), now;
        a store without one has nothing to stop."""
        return {"running": False, "stopped": False, "users": [], "reason": "this store runs no server of its own"}


class MarkStore(ABC):
    """Resonance: marks beside the packets (never in them), and the vectors scoring reads."""

    # -- resonance -------------------------------------------------------------------------
    @abstractmethod
    def vectors(self, role: str | None = None) -> tuple[list[dict], np.ndarray]:
        """Every packet of `role` (all when None) in log order as light records (id, seq,
        session, role, prose, resonance) beside their vectors, one row each."""

    @abstractmethod
    def unmarked(self, source: str, role: str | None = None) -> tuple[list[dict], np.ndarray]:
        """Packets of `role` (all when None) with no mark from `source` yet, in log order, as
        `vectors` gives them, each with `before`: the prose of the packet before it in its
        session (None for a session's first). Memory grows with these packets, not the log."""

    @abstractmethod
    def nearest_earlier(self, vectors: np.ndarray, seqs: Sequence[int]) -> np.ndarray:
        """For each vector, its highest inner product with any packet logged before `seqs[i]`
        (−1 when there is none), through the backend's vector index."""

    @abstractmethod
    def mark(self, packet_id: str, score: float, source: str) -> None:
        """Record a resonance mark (a separate record; the packet itself never changes)."""

    @abstractmethod
    def mark_many(self, marks: list[tuple[str, float, str]]) -> None:
        """Many (packet id, score, source) signals in one transaction."""

    @abstractmethod
    def latest_marks(self, source: str) -> dict[str, float]:
        """The newest score of each packet from one source (mark, novelty, judge, combined)."""


class MemoryStore(ABC):
    """The notebook and the self-definition: versioned text, every version kept."""

    # -- the notebook and the self-definition ----------------------------------------------
    @abstractmethod
    def memory_versions(self, kind: str) -> list[dict]:
        """Every version of `kind` (notebook | self), oldest first: kind, version, ts, author,
        reason, text."""

    @abstractmethod
    def memory_latest(self, kinds: Sequence[str]) -> dict[str, dict]:
        """The newest version of each kind that has one (a backend may cache it)."""

    @abstractmethod
    def memory_add(self, kind: str, text: str, author: str, reason: str | None,
                   review: dict | None = None) -> int:
        """A new version; returns its number. `review`: what a checked rewrite kept, dropped
        and evicted (memory/review.py), kept with the version."""


class UserStore(ABC):
    """The user's own use of the log: read-only SQL, export, re-embedding."""

    # -- the user's own use ----------------------------------------------------------------
    @abstractmethod
    def sql(self, query: str, timeout: float = SQL_TIMEOUT) -> tuple[list[str], list[tuple]]:
        """One read-only statement over the log's tables and nothing else (no files, network,
        extensions or settings): (columns, rows). Stopped after `timeout` seconds (TimedOut)."""

    @abstractmethod
    def export(self, fmt: str, path: str, with_embeddings: bool = False) -> int:
        """The whole log, oldest first, as jsonl, parquet or csv at `path`; returns the count."""

    @abstractmethod
    def reembed(self, encode, embed_model: str, dim: int, progress=None) -> int:
        """Recompute every embedding with a new embedder; the only way an embedding changes."""


class MigrationStore(ABC):
    """The store as a whole: what it holds, and moving it between backends as stored."""

    # -- the store as a whole: info and migration between backends -------------------------
    @abstractmethod
    def info(self) -> dict:
        """backend, counts (packets, marks, memory versions), sizes and index state."""

    @abstractmethod
    def raw_packets(self, after_seq: int, limit: int) -> tuple[list[dict], np.ndarray]:
        """Up to `limit` packets after `after_seq` as stored (resonance as written, meta as JSON
        text, naive UTC times), in seq order, beside their vectors."""

    @abstractmethod
    def raw_marks(self) -> list[tuple]:
        """Every resonance mark: (packet id, score, source, ts), oldest first."""

    @abstractmethod
    def raw_memory(self) -> list[tuple]:
        """Every notebook and self version: (kind, version, ts, author, reason, text)."""

    @abstractmethod
    def load_raw(self, rows: list[dict], vectors: np.ndarray, marks: list[tuple] | None = None,
                 memory: list[tuple] | None = None) -> None:
        """Write rows that raw_packets gave (ids, seqs, vectors kept) in one transaction; marks
        and memory versions, when given, replace this store's own."""


class Store(PacketStore, MarkStore, MemoryStore, UserStore, MigrationStore):
    """What a backend implements: every protocol above, each declared in full. Code that needs
    one part types against that part (a notebook against MemoryStore, a scorer against
    MarkStore); the soul's handle gives the whole."""
