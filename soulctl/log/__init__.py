"""The bifocal log (DESIGN §4, §11): packets, the Store interface and the factory that opens
the backend soul.yaml names. The factory is the one place outside a backend's folder that
knows backends by name."""

from __future__ import annotations

import os

from soulctl.errors import InvalidInput
from soulctl.home import Home
from soulctl.log.packets import Filters, Hit, NewPacket, Packet
from soulctl.log.store import Store

EMBEDDED_POSTGRES = "postgres+embedded"


def open_store(home: Home, url: str | None = None) -> Store:
    """The store soul.yaml names (or `url`, or $SOULCTL_STORE_URL): `duckdb:data/soul.duckdb`
    (default), `postgresql://user@host/db`, or `postgres+embedded` (a PostgreSQL server of the
    home's own under data/postgres, started on demand)."""
    url = url or os.environ.get("SOULCTL_STORE_URL") or home.config.store
    if url.startswith("duckdb:"):
        from soulctl.log.duckdb import DuckDBStore

        path = home.resolve(url[len("duckdb:"):])
        default = home.resolve("data/soul.duckdb")
        # the derived indexes belong to one database file: another file gets its own
        index = "log" if path == default else f"log-{path.stem}"
        return DuckDBStore(path, home.data / "index" / index)
    if url == EMBEDDED_POSTGRES:
        from soulctl.log.postgres import PostgresStore

        return PostgresStore(embedded=home.data / "postgres")
    if url.startswith(("postgresql://", "postgres://")):
        from soulctl.log.postgres import PostgresStore

        return PostgresStore(url)
    raise InvalidInput(f"unknown store URL {url.split('@')[-1]!r} in soul.yaml",
                       hint=f"use duckdb:data/soul.duckdb, {EMBEDDED_POSTGRES} or postgresql://user@host/db")


def local_files(home: Home, url: str | None = None) -> list:
    """The files on this machine that hold the store `url` (default: soul.yaml's) names."""
    return open_store(home, url or home.config.store).local_files()


__all__ = ["Filters", "Hit", "NewPacket", "Packet", "Store", "open_store"]
