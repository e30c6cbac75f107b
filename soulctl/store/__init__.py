"""The soul's store: the bifocal log behind one interface (DESIGN §4, §11)."""

from __future__ import annotations

from soulctl.errors import InvalidInput
from soulctl.home import Home
from soulctl.store.base import Filters, Hit, NewPacket, Packet, Store


def open_store(home: Home) -> Store:
    """The store soul.yaml names: `duckdb:data/soul.duckdb` (default) or `postgresql://…`."""
    url = home.config.store
    if url.startswith("duckdb:"):
        from soulctl.store.duckdb_store import DuckDBStore

        path = home.resolve(url[len("duckdb:"):])
        return DuckDBStore(path, home.data / "index" / "log")
    if url.startswith(("postgresql://", "postgres://")):
        raise InvalidInput("the PostgreSQL + pgvector store is not available in this version",
                           hint="use store: duckdb:data/soul.duckdb in soul.yaml")
    raise InvalidInput(f"unknown store URL {url!r} in soul.yaml",
                       hint="use duckdb:data/soul.duckdb or postgresql://user@host/db")


def local_files(home: Home) -> list:
    """The files on this machine that hold the store (to be kept from user output)."""
    url = home.config.store
    return [home.resolve(url[len("duckdb:"):])] if url.startswith("duckdb:") else []


__all__ = ["Filters", "Hit", "NewPacket", "Packet", "Store", "open_store"]
