"""The two rankings of hybrid search on Postgres, one SQL query each with every filter pushed in:
the vector half over the HNSW index (cosine), the keyword half over the GIN-indexed tsvector."""

from __future__ import annotations

from soulctl.log.packets import Filters
from soulctl.log.postgres.filters import where_clause


def semantic_sql(filters: Filters, depth: int) -> tuple[str, list]:
    """(sql, params after the query vector's two places)."""
    where, params = where_clause(filters)
    table = "log" if filters.min_resonance is not None else "packets"  # the view only for marks
    return (f"SELECT seq, 1 - (embedding <=> %s) FROM {table} WHERE TRUE {where} "
            f"ORDER BY embedding <=> %s LIMIT {int(depth)}"), params


def keyword_sql(tsquery: str, filters: Filters, depth: int) -> tuple[str, list]:
    """Any of the query's words, as the DuckDB backend's keyword half takes them (a question
    is not a conjunction: "what kind of dog did we adopt" must find "we adopted a greyhound");
    a phrase stays a phrase and a negated word still excludes. Ranked by ts_rank, normalised by
    the log of the packet's length; filters pushed in."""
    where, params = where_clause(filters)
    if filters.min_resonance is not None:  # marks live in the view; its rows have no tsvector
        where = f"AND seq IN (SELECT seq FROM log WHERE TRUE {where})"
    query = any_of(tsquery)
    sql = (f"SELECT seq, ts_rank(tsv, %s::tsquery, 1) AS s FROM packets WHERE tsv @@ %s::tsquery "
           f"{where} ORDER BY s DESC, seq LIMIT {int(depth)}")
    return sql, [query, query, *params]


def any_of(tsquery: str) -> str:
    """websearch_to_tsquery's conjunction as a disjunction of its positive terms, its negated
    terms still required absent: `'a' & 'b' <-> 'c' & !'d'` → `( 'a' | 'b' <-> 'c' ) & !'d'`."""
    terms = conjuncts(tsquery)
    positive = [t for t in terms if not t.startswith("!")]
    negative = [t for t in terms if t.startswith("!")]
    if not positive:
        return tsquery
    return " & ".join([f"( {' | '.join(positive)} )", *negative])


def conjuncts(tsquery: str) -> list[str]:
    """The top-level AND terms of a tsquery's text (`'a' & 'b' <-> 'c' & !'d'`), or the whole
    query alone when it has a top-level OR (which binds looser than AND)."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(tsquery):
        if ch == "'":
            quoted = not quoted  # '' inside a lexeme toggles twice
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch == "|":
            return [tsquery.strip()]
        elif depth == 0 and ch == "&":
            parts.append(tsquery[start:i].strip())
            start = i + 1
    parts.append(tsquery[start:].strip())
    return [p for p in parts if p]
