"""Filters in the Postgres backend's dialect (psycopg's `%s` placeholders; log/filters.py writes
them), and the neighbouring turns the context ranking of hybrid search asks for."""

from __future__ import annotations

from soulctl.log.filters import Dialect
from soulctl.log.filters import where_clause as filters_sql
from soulctl.log.packets import Filters


DIALECT = Dialect("%s", "meta->>'speaker'")


def where_clause(filters: Filters | None) -> tuple[str, list]:
    """Filters as SQL conditions in PostgreSQL's dialect (log/filters.py writes them)."""
    return filters_sql(filters, DIALECT)


def neighbours_sql(seqs: list[int], filters: Filters, steps) -> tuple[str, list]:
    """(sql, params) listing (seq, session) of the hits and of their neighbours at `steps` that
    pass the filters."""
    wanted = sorted({n for seq in seqs for n in (seq + d for d in steps) if n > 0})
    where, params = where_clause(filters)
    table = "log" if filters.min_resonance is not None else "packets"  # the view only for marks
    return (f"SELECT seq, session FROM {table} WHERE (seq = ANY(%s) {where}) OR seq = ANY(%s)",
            [wanted, *params, [int(s) for s in seqs]])
