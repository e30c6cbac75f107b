"""The bifocal log (DESIGN §4, §11): packets, the Store interface and the factory that opens
the backend soul.yaml names. The factory is the one place outside a backend's folder that
knows backends by name."""

from __future__ import annotations

import os
from pathlib import Path

from soulctl.errors import InvalidInput
from soulctl.home import Home
from soulctl.log.packets import Filters, Hit, NewPacket, Packet
from soulctl.log.store import Store

EMBEDDED_POSTGRES = "postgres+embedded"


def open_store(home: Home, url: str | None = None) -> Store:
    """The store soul.yaml names (or `url`, or $SOULCTL_STORE_URL): `duckdb:data/soul.duckdb`
    (default), `postgresql://user@host/db`, or `postgres+embedded` (a PostgreSQL server of the
    home's own under data/postgres, started on demand)."""
    kind, where = _parse(home, url)
    if kind == "duckdb":
        from soulctl.log.duckdb import DuckDBStore

        return DuckDBStore(*where)
    from soulctl.log.postgres import PostgresStore

    return PostgresStore(embedded=where) if kind == "embedded" else PostgresStore(where)


def store_files(home: Home, url: str | None = None) -> list[Path]:
    """The files and folders on this machine that hold the store, named without opening it
    (none for a remote server)."""
    kind, where = _parse(home, url)
    if kind == "duckdb":
        from soulctl.log.duckdb.files import local_files

        return local_files(*where)
    return [where] if kind == "embedded" else []


def _parse(home: Home, url: str | None):
    """(kind, where) for a store URL: duckdb (database file, index folder), embedded (its data
    folder) or postgresql (the URL)."""
    url = url or os.environ.get("SOULCTL_STORE_URL") or home.config.store
    if url.startswith("duckdb:"):
        path = home.resolve(url[len("duckdb:"):])
        default = home.resolve("data/soul.duckdb")
        # the derived indexes belong to one database file: another file gets its own
        index = "log" if path == default else f"log-{path.stem}"
        return "duckdb", (path, home.data / "index" / index)
    if url == EMBEDDED_POSTGRES:
        return "embedded", home.data / "postgres"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql", url
    raise InvalidInput(f"unknown store URL {url.split('@')[-1]!r} in soul.yaml",
                       hint=f"use duckdb:data/soul.duckdb, {EMBEDDED_POSTGRES} or postgresql://user@host/db")


__all__ = ["Filters", "Hit", "NewPacket", "Packet", "Store", "open_store"]
