"""Filters as SQL for the Postgres backend (psycopg's `%s` placeholders), and the neighbouring
turns the context ranking of hybrid search asks for."""

from __future__ import annotations

from soulctl.log.packets import Filters
from soulctl.log.rows import naive_utc


def where_clause(filters: Filters | None) -> tuple[str, list]:
    """Filters as SQL conditions (each `AND …`)."""
    if filters is None:
        return "", []
    parts, params = [], []
    for name in ("role", "session", "generation", "corpus"):
        if (value := getattr(filters, name)) is not None:
            parts.append(f"AND {name} = %s")
            params.append(value)
    if filters.since is not None:
        parts.append("AND ts >= %s")
        params.append(naive_utc(filters.since))
    if filters.until is not None:
        parts.append("AND ts <= %s")
        params.append(naive_utc(filters.until))
    if filters.min_resonance is not None:
        parts.append("AND resonance >= %s")
        params.append(float(filters.min_resonance))
    if filters.speaker is not None:
        parts.append("AND meta->>'speaker' = %s")
        params.append(filters.speaker)
    return " ".join(parts), params


def neighbours_sql(seqs: list[int], filters: Filters, steps) -> tuple[str, list]:
    """(sql, params) listing (seq, session) of the hits and of their neighbours at `steps` that
    pass the filters."""
    wanted = sorted({n for seq in seqs for n in (seq + d for d in steps) if n > 0})
    where, params = where_clause(filters)
    table = "log" if filters.min_resonance is not None else "packets"  # the view only for marks
    return (f"SELECT seq, session FROM {table} WHERE (seq = ANY(%s) {where}) OR seq = ANY(%s)",
            [wanted, *params, [int(s) for s in seqs]])
