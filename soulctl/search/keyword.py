"""The keyword half: a user's query parsed for a tantivy index and run, with one-line errors
(a `field:` the index lacks is the user's mistake, not a bug)."""

from __future__ import annotations

from contextlib import contextmanager

from soulctl.errors import InvalidInput


@contextmanager
def user_query(text: str, fields: list[str]):
    """Around parsing and running `text`: tantivy's ValueError becomes a one-line error."""
    try:
        yield
    except ValueError as exc:
        raise InvalidInput(f"keyword query {text!r}: {exc}",
                           hint=f"search words or \"phrases\" (fields: {', '.join(fields)})") from None


def parse_query(index, text: str, fields: list[str]):
    """Words and phrases search `fields`; a `field:` prefix must name one the index has."""
    with user_query(text, fields):
        query, _errors = index.parse_query_lenient(text, fields)
    return query
