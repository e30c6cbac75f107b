"""soulctl log: the bifocal log — add, ls, show, search, eval, export, sql, reembed, reindex."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from soulctl.cli import options, state
from soulctl.cli.output import Column
from soulctl.errors import InvalidInput

app = typer.Typer(help="The bifocal log: every interaction as prose and embedding.",
                  no_args_is_help=True)



PACKET_COLUMNS = [
    Column("id"), Column("ts", fmt=lambda v: v[:19].replace("T", " ") if v else ""),
    Column("session"), Column("role"), Column("generation", "gen", fmt=lambda v: v or "-"),
    Column("resonance", "res", fmt=lambda v: "-" if v is None else f"{v:.2f}", align="right"),
    Column("prose", fmt=options.snippet),
]


@app.command("add")
def add(
    text: Annotated[Optional[str], typer.Argument(help="The packet's prose; omit to read stdin.")] = None,
    role: Annotated[str, typer.Option("--role", help="user, soul, majordomo, hands, tool, system, peer.")] = "user",
    session: Annotated[Optional[str], typer.Option("--session", help="Session id (default: $SOUL_SESSION, else a new one).")] = None,
    meta: Annotated[Optional[str], typer.Option("--meta", help="JSON object stored with each packet.")] = None,
    parent: Annotated[Optional[str], typer.Option("--parent", help="The packet this one replies to.")] = None,
    corrects: Annotated[Optional[str], typer.Option("--corrects", help="The packet this one corrects.")] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="stdin is JSON lines: {\"prose\", \"role\", \"session\", \"meta\", …}.")] = False,
    with_embeddings: Annotated[bool, typer.Option("--with-embeddings", help="With --jsonl: keep each line's `embedding` (from `log export --with-embeddings`) instead of embedding anew.")] = False,
) -> None:
    """Add packets: TEXT, or each stdin line, or JSON lines with --jsonl.

    Every packet is embedded once, at write time. Input is checked whole before anything
    is written: a bad line (empty, over 1 MB, invalid UTF-8 or JSON, an id that is not a
    UUID or is already in the log, a parent, generation or corpus that does not exist)
    names its line number and nothing is added. `log export` output reads back whole: ids,
    times, links, marks and, with --with-embeddings, the vectors as they were.
    """
    from soulctl.log.ingest import add_packets, take_in
    from soulctl.processes import Interrupts

    out = state.out
    soul = state.soul()
    store, embedder = soul.store, soul.embedder
    data = None
    if text is None:
        if sys.stdin.isatty():
            raise InvalidInput("no TEXT and nothing piped on stdin",
                               hint='soulctl log add "text", or: cat lines.txt | soulctl log add')
        data = sys.stdin.buffer.read()
    incoming = take_in(soul.home, store, embedder, text, data, role=role, session=session, meta=meta,
                       parent=parent, corrects=corrects, jsonl=jsonl, with_embeddings=with_embeddings)
    added = []
    try:
        with out.progress_bars() as progress, Interrupts() as interrupts:
            for packet in add_packets(store, embedder, incoming.packets, progress, incoming.vectors,
                                      between=interrupts.check):
                added.append(packet)
    except KeyboardInterrupt as exc:
        added.extend(getattr(exc, "committed", []))  # a batch that finished as Ctrl-C came
        out.error(f"interrupted: {len(added)} of {len(incoming.packets)} packets were committed"
                  + (f", the last {added[-1].id}" if added else ""))
        raise typer.Exit(130) from None
    if out.json or out.quiet:
        out.rows(({"id": p.id, "seq": p.seq, "session": p.session, "role": p.role} for p in added),
                 [Column("id")])
    else:
        sessions = sorted({p.session for p in added})
        out.text(f"added {len(added)} packet{'s' * (len(added) != 1)} to session "
                 f"{', '.join(sessions)}" + (f" ({added[0].id})" if len(added) == 1 else ""))


@app.command("ls")
def ls(
    n: Annotated[int, typer.Option("-n", "--max-count", help="Show at most N (0: all).")] = 20,
    role: options.Role = None, session: options.Session = None, since: options.Since = None, until: options.Until = None,
    generation: options.Generation = None, corpus: options.Corpus = None, min_resonance: options.MinResonance = None,
    speaker: options.Speaker = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Oldest first.")] = False,
) -> None:
    """List packets newest first, like `git log`."""
    store = state.soul().store
    filters = options.filters(role, session, since, until, generation, corpus, min_resonance, speaker)
    rows = (p.as_dict() for p in store.list(filters, limit=n or None, newest_first=not reverse))
    state.out.rows(rows, PACKET_COLUMNS, empty="no packets match")


@app.command("show")
def show(
    packet_id: Annotated[str, typer.Argument(help="A packet id (or a unique prefix).")],
) -> None:
    """Show one whole packet: prose, meta, links and its embedding (under --json)."""
    packet = state.soul().store.get(packet_id, with_embedding=True)

    def human(d: dict) -> str:
        emb = d.pop("embedding", None)
        prose = d.pop("prose")
        lines = [f"{k:17s} {v}" for k, v in d.items() if v is not None]
        if emb is not None:
            lines.append(f"{'embedding':17s} {len(emb)} floats [{', '.join(f'{x:.4f}' for x in emb[:4])}, …]")
        return "\n".join(lines) + "\n\n" + prose

    state.out.record(packet.as_dict(with_embedding=True), human=human)


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What to look for; `-` reads many queries from stdin.")],
    k: options.K = 10, semantic: options.Semantic = False, keyword: options.Keyword = False,
    role: options.Role = None, session: options.Session = None, since: options.Since = None, until: options.Until = None,
    generation: options.Generation = None, corpus: options.Corpus = None, min_resonance: options.MinResonance = None,
    speaker: options.Speaker = None,
    plain: Annotated[bool, typer.Option("--plain", help="The fusion's own order: no re-ranking, and a question asked before (restating the query) keeps its place.")] = False,
) -> None:
    """Search by meaning and by keyword (the default), as chat's retrieval does.

    Both halves' candidates — and a named day's or speaker's turns — are re-ranked by what
    they say beside the question, and a user's earlier question that restates the query comes
    after every packet that may answer it. --plain gives the fusion's own order.
    `log search -` answers many queries in one process: plain lines, or JSON lines
    {"query": …, "session": …, "id": …}; each hit line then carries `query_id`.
    """
    from soulctl.log.ingest import check_embedder
    from soulctl.log.search import parse_queries, search_many
    from soulctl.log.search import search as run_search

    mode = options.search_mode(semantic, keyword)
    out = state.out
    soul = state.soul()
    store, embedder = soul.store, soul.embedder
    filters = options.filters(role, session, since, until, generation, corpus, min_resonance, speaker)
    check_embedder(store, embedder)
    columns = [Column("rank", align="right"), Column("score", fmt=lambda v: f"{v:.4f}", align="right"),
               Column("id"), Column("role"), Column("session"), Column("prose", fmt=options.snippet)]
    if query != "-":
        results = run_search(store, embedder, query, k, mode, filters, plain=plain)
        out.rows(({"rank": i, **r.as_dict()} for i, r in enumerate(results, 1)), columns,
                 empty="no hits")
        return
    queries = list(parse_queries(sys.stdin.buffer.read()))
    for q, results in search_many(store, embedder, queries, k, mode, filters, plain):
        rows = [{"query_id": q["query_id"], "query": q["query"], "rank": i, **r.as_dict()}
                for i, r in enumerate(results, 1)]
        if not (out.json or out.quiet):
            out.text(f"# {q['query_id']}: {q['query']}")
        out.rows(rows, columns)
