"""The PostgreSQL + pgvector backend of the log (DESIGN §11)."""

from soulctl.log.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
