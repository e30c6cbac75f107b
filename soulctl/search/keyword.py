"""The keyword half: a user's query parsed for a tantivy index and run, with one-line errors
(a `field:` the index lacks is the user's mistake, not a bug)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from soulctl.errors import InvalidInput

log = logging.getLogger(__name__)


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


def open_index(schema, path: Path):
    """The tantivy index at `path`. tantivy takes a lock file even to read; where the home is
    read-only it cannot, so the index is read from a private copy made for this process."""
    import tantivy

    try:
        path.mkdir(parents=True, exist_ok=True)
        return tantivy.Index(schema, path=str(path))
    except (OSError, ValueError) as exc:
        if "Read-only" not in str(exc) and "Permission denied" not in str(exc):
            raise
    import atexit
    import shutil
    import tempfile

    copy = Path(tempfile.mkdtemp(prefix="soulctl-keyword-"))
    atexit.register(shutil.rmtree, copy, True)
    if path.is_dir():
        shutil.copytree(path, copy, dirs_exist_ok=True)
    log.info("the keyword index in %s is read-only: searching a copy", path)
    return tantivy.Index(schema, path=str(copy))
