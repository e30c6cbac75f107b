"""The packet filters as SQL conditions, written once for every backend: each backend gives its
dialect (its placeholder, how it reads `meta.speaker`) and gets `AND …` conditions with their
parameters. No SQL runs here; the backends run it."""

from __future__ import annotations

from dataclasses import dataclass

from soulctl.log.packets import Filters
from soulctl.log.rows import naive_utc


@dataclass(frozen=True)
class Dialect:
    placeholder: str  # "?" (DuckDB) or "%s" (psycopg)
    speaker: str  # the SQL expression of a packet's meta.speaker


def where_clause(filters: Filters | None, dialect: Dialect) -> tuple[str, list]:
    """Filters as SQL conditions (each `AND …`) with the dialect's placeholders."""
    if filters is None:
        return "", []
    mark = dialect.placeholder
    parts, params = [], []
    for name in ("role", "session", "generation", "corpus"):
        if (value := getattr(filters, name)) is not None:
            parts.append(f"AND {name} = {mark}")
            params.append(value)
    for name, op in (("since", ">="), ("until", "<=")):
        if (value := getattr(filters, name)) is not None:
            parts.append(f"AND ts {op} {mark}")
            params.append(naive_utc(value))
    if filters.min_resonance is not None:
        parts.append(f"AND resonance >= {mark}")
        params.append(float(filters.min_resonance))
    if filters.speaker is not None:
        parts.append(f"AND {dialect.speaker} = {mark}")
        params.append(filters.speaker)
    return " ".join(parts), params
