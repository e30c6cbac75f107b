"""The bifocal log (DESIGN §4, §11): packets, the Store interface and the factory that opens
the backend soul.yaml names. The factory is the one place outside a backend's folder that
knows backends by name."""

from __future__ import annotations

from soulctl.errors import InvalidInput
from soulctl.home import Home
from soulctl.log.packets import Filters, Hit, NewPacket, Packet
from soulctl.log.store import Store


def open_store(home: Home, url: str | None = None) -> Store:
    """The store soul.yaml names (or `url`): `duckdb:data/soul.duckdb` (default) or
    `postgresql://…`."""
    url = url or home.config.store
    if url.startswith("duckdb:"):
        from soulctl.log.duckdb import DuckDBStore

        path = home.resolve(url[len("duckdb:"):])
        return DuckDBStore(path, home.data / "index" / "log")
    if url.startswith(("postgresql://", "postgres://")):
        raise InvalidInput("the PostgreSQL + pgvector store is not available in this version",
                           hint="use store: duckdb:data/soul.duckdb in soul.yaml")
    raise InvalidInput(f"unknown store URL {url!r} in soul.yaml",
                       hint="use duckdb:data/soul.duckdb or postgresql://user@host/db")


def local_files(home: Home, url: str | None = None) -> list:
    """The files on this machine that hold the store (kept from user output; removed when an
    init fails half-way)."""
    url = url or home.config.store
    if not url.startswith("duckdb:"):
        return []
    db = home.resolve(url[len("duckdb:"):])
    return [db, db.with_name(db.name + ".lock"), db.with_name(db.name + ".wal"),
            db.with_name(db.name + ".memory")]


__all__ = ["Filters", "Hit", "NewPacket", "Packet", "Store", "open_store"]
