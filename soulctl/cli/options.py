"""Options shared by several commands: one definition each, one set of aliases."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

MAX_K = 10_000  # hits per query: beyond this a search allocates without bound

K = Annotated[int, typer.Option("-k", help=f"Hits per query (1-{MAX_K}).", min=1, max=MAX_K)]
Semantic = Annotated[bool, typer.Option("--semantic", help="Vector half only.")]
Keyword = Annotated[bool, typer.Option("--keyword", help="BM25 half only.")]
Force = Annotated[bool, typer.Option("--force", help="Replace an existing file.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (required when not on a terminal).")]
# the packet filters of `log ls` and `log search` (and whatever lists packets next)
Role = Annotated[Optional[str], typer.Option("--role", help="user, soul, majordomo, hands, tool, system, peer.")]
Session = Annotated[Optional[str], typer.Option("--session", help="Only this session.")]
Since = Annotated[Optional[str], typer.Option("--since", help="ISO time or age (30m, 2h, 7d).")]
Until = Annotated[Optional[str], typer.Option("--until", help="ISO time or age.")]
Generation = Annotated[Optional[str], typer.Option("--generation", help="Spoken by this generation (gen-0003).")]
Corpus = Annotated[Optional[str], typer.Option("--corpus", help="Corpus mounted at the time.")]
Speaker = Annotated[Optional[str], typer.Option("--speaker", help="Said by this person (the packet's meta.speaker).")]
MinResonance = Annotated[Optional[float], typer.Option("--min-resonance", help="Resonance at least this (0-1).", min=0, max=1)]


def sampling(name: str):
    """A typer callback that checks a sampling flag against the limits the API and soul.yaml
    share (engine/sampling.py), so `chat --top-p 0` is refused as the API refuses it."""

    def check(value):
        from soulctl.engine.sampling import out_of_range

        if value is not None and (why := out_of_range(name, value)):
            raise typer.BadParameter(f"{value} is not {why}")
        return value

    return check


def filters(role, session, since, until, generation, corpus, min_resonance, speaker=None):
    """The packet filters from their flags, each checked (a role, times)."""
    from soulctl.log import Filters
    from soulctl.log.ingest import check_role, parse_time

    return Filters(role=check_role(role) if role else None, session=session,
                   since=parse_time(since, "--since") if since else None,
                   until=parse_time(until, "--until") if until else None,
                   generation=generation, corpus=corpus, min_resonance=min_resonance,
                   speaker=speaker or None)


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
