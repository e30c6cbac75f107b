"""The DuckDB backend of the log (the embedded default): only this folder runs DuckDB or SQL."""

from soulctl.log.duckdb.store import DuckDBStore

__all__ = ["DuckDBStore"]
