"""Options shared by several commands: one definition each, one set of aliases."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

MAX_K = 10_000  # hits per query: beyond this a search allocates without bound

K = Annotated[int, typer.Option("-k", help=f"Hits per query (1-{MAX_K}).", min=1, max=MAX_K)]
Semantic = Annotated[bool, typer.Option("--semantic", help="Vector half only.")]
Keyword = Annotated[bool, typer.Option("--keyword", help="BM25 half only.")]
Force = Annotated[bool, typer.Option("--force", help="Replace an existing file.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]
Session = Annotated[Optional[str], typer.Option("--session", help="Only this session.")]


def search_mode(semantic: bool, keyword: bool) -> str:
    """hybrid (the default), or one half with --semantic / --keyword."""
    from soulctl.errors import UsageError

    if semantic and keyword:
        raise UsageError("--semantic and --keyword exclude each other", hint="omit both for hybrid")
    return "semantic" if semantic else "keyword" if keyword else "hybrid"


def snippet(text: str | None, width: int = 72) -> str:
    """A cell for people: one line, at most `width` characters."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
