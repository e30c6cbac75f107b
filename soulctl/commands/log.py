"""soulctl log: the bifocal log — add, ls, show, search, eval, export, sql, reembed, reindex."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from soulctl.cli import options, state
from soulctl.cli.output import Column
from soulctl.errors import InvalidInput, NotFound

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
    role: Annotated[str, typer.Option("--role", help="user, soul, majordomo, hands, tool, system.")] = "user",
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
    import json

    from soulctl.errors import InvalidInput, NotFound, UsageError
    from soulctl.log import NewPacket
    from soulctl.log.ingest import (
        Incoming,
        add_packets,
        check_prose,
        check_references,
        check_role,
        current_generation,
        parse_jsonl,
        parse_plain,
    )
    from soulctl.log.packets import env_session, new_session_id
    from soulctl.processes import Interrupts

    out = state.out
    soul = state.soul()
    home, store = soul.home, soul.store
    check_role(role)
    if with_embeddings and not jsonl:
        raise UsageError("--with-embeddings reads vectors from --jsonl input", hint="add --jsonl")
    meta_obj = None
    if meta is not None:
        from soulctl.jsontext import loads

        meta_obj = loads(meta, "--meta")
        if not isinstance(meta_obj, dict):
            raise InvalidInput("--meta must be a JSON object")
    for flag, ref in (("--parent", parent), ("--corrects", corrects)):
        if ref and not store.existing_ids([ref]):
            raise NotFound(f"{flag} {ref} names no packet in the log",
                           hint="see `soulctl log ls`; give a whole packet id")
    defaults = dict(role=role, session=session or env_session() or new_session_id(),
                    meta=meta_obj, parent=parent, corrects=corrects,
                    generation=current_generation(home))
    embedder = soul.embedder
    if text is not None:
        if jsonl:
            raise InvalidInput("give TEXT or --jsonl on stdin, not both")
        incoming = Incoming([NewPacket(prose=check_prose(text), **defaults)], ["TEXT"])
    else:
        if sys.stdin.isatty():
            raise InvalidInput("no TEXT and nothing piped on stdin",
                               hint='soulctl log add "text", or: cat lines.txt | soulctl log add')
        data = sys.stdin.buffer.read()
        incoming = (parse_jsonl(data, defaults, embedder if with_embeddings else None) if jsonl
                    else parse_plain(data, defaults))
        if not incoming.packets:
            raise InvalidInput("no packets on stdin (only blank lines)")
    check_references(home, store, incoming)
    added = []
    try:
        with out.progress_bars() as progress, Interrupts() as interrupts:
            for packet in add_packets(home, incoming.packets, embedder, store, progress, incoming.vectors,
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
    reverse: Annotated[bool, typer.Option("--reverse", help="Oldest first.")] = False,
) -> None:
    """List packets newest first, like `git log`."""
    store = state.soul().store
    filters = options.filters(role, session, since, until, generation, corpus, min_resonance)
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
) -> None:
    """Search by meaning and by keyword, fused by reciprocal rank (the default).

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
    filters = options.filters(role, session, since, until, generation, corpus, min_resonance)
    check_embedder(store, embedder)
    columns = [Column("rank", align="right"), Column("score", fmt=lambda v: f"{v:.4f}", align="right"),
               Column("id"), Column("role"), Column("session"), Column("prose", fmt=options.snippet)]
    if query != "-":
        results = run_search(store, embedder, query, k, mode, filters)
        out.rows(({"rank": i, **r.as_dict()} for i, r in enumerate(results, 1)), columns,
                 empty="no hits")
        return
    queries = list(parse_queries(sys.stdin.buffer.read()))
    for q, results in search_many(store, embedder, queries, k, mode, filters):
        rows = [{"query_id": q["query_id"], "query": q["query"], "rank": i, **r.as_dict()}
                for i, r in enumerate(results, 1)]
        if not (out.json or out.quiet):
            out.text(f"# {q['query_id']}: {q['query']}")
        out.rows(rows, columns)


@app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl, parquet or csv.")] = "jsonl",
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="File to write (default: stdout).")] = None,
    with_embeddings: Annotated[bool, typer.Option("--with-embeddings", help="Include the vectors.")] = False,
    force: options.Force = False,
) -> None:
    """Export the whole log for pandas / polars / duckdb (oldest first).

    The file is written whole or not at all (a temporary file renamed into place). An
    existing file is refused without --force; the soul home's own files always are. A FIFO,
    a device or /dev/stdout is written into. `log add --jsonl --with-embeddings` reads a
    jsonl export back.
    """
    from soulctl.outfile import STDOUT, output_path

    soul = state.soul()
    target = output or STDOUT
    sys.stdout.flush()
    try:
        with output_path(target, force, soul.home) as tmp:
            count = soul.store.export(fmt, str(tmp), with_embeddings)
    except BrokenPipeError:
        from soulctl.cli.output import PipeClosed

        raise PipeClosed from None
    if target != STDOUT:
        state.out.hint(f"exported {count} packets to {output}")


@app.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help="A read-only SELECT over `log`, `packets`, `resonance_marks`.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds the query may run (exit 7 past it).", min=0.1)] = 30.0,
) -> None:
    """Run your own read-only SQL against the log; statements that write are refused.

    Tables: packets (as written), resonance_marks; view: log (packets with their latest
    resonance). A query is stopped after --timeout seconds (exit 7): on DuckDB a writer waits
    for it at most that long. Example: soulctl log sql "SELECT role, count(*) FROM log GROUP BY role"
    """
    columns, rows = state.soul().store.sql(query, timeout)
    state.out.rows((dict(zip(columns, row)) for row in rows), [Column(c) for c in columns],
                   id_key=columns[0] if columns else "id")


@app.command("eval")
def eval_(
    questions: Annotated[str, typer.Argument(help="JSON lines {\"question\", \"evidence\": [ids], \"category\"}; `-` reads stdin.")],
    k: options.K = 10,
    by: Annotated[Optional[str], typer.Option("--by", help="Evidence names packets by this meta key (e.g. dia_id), not by id.")] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="Only this mode: hybrid, semantic or keyword.")] = None,
    session: options.Session = None,
) -> None:
    """How well search finds what answers your questions: recall@k and MRR, hybrid beside
    semantic and keyword, overall and per category.

    A question counts as found when any of its evidence packets ranks in the top k. Questions
    with an empty `evidence` list are counted as unanswerable and not scored.

    Example:

      soulctl log eval questions.jsonl -k 10 --by dia_id
    """
    from soulctl.log.evaluate import evaluate, parse_questions
    from soulctl.log.ingest import check_embedder
    from soulctl.log.search import SEARCH_MODES

    if mode is not None and mode not in SEARCH_MODES:
        raise InvalidInput(f"unknown search mode {mode!r}", hint=f"use one of {', '.join(SEARCH_MODES)}")
    data = sys.stdin.buffer.read() if questions == "-" else _read_file(questions)
    parsed = parse_questions(data)
    soul = state.soul()
    check_embedder(soul.store, soul.embedder)
    filters = options.filters(None, session, None, None, None, None, None)
    with state.out.progress_bars() as progress:
        result = evaluate(soul.store, soul.embedder, parsed, k, [mode] if mode else SEARCH_MODES, by,
                          filters, progress)
    state.out.record(result, human=_eval_table, id_key="k")


def _read_file(path: str) -> bytes:
    from pathlib import Path

    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None


def _eval_table(r: dict) -> str:
    k = r["k"]
    categories = sorted({c for m in r["modes"].values() for c in m["categories"]})
    head = ["mode", f"recall@{k}", "MRR", *categories]
    rows = [[mode, _pct(m["recall"]), f"{m['mrr']:.3f}" if m["mrr"] is not None else "-",
             *(_pct(m["categories"].get(c, {}).get("recall")) for c in categories)]
            for mode, m in r["modes"].items()]
    counts = next(iter(r["modes"].values()))["categories"] if r["modes"] else {}
    rows.append(["questions", str(r["scored"]), "", *(str(counts.get(c, {}).get("questions", 0)) for c in categories)])
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [head, *rows]]
    if r["unanswerable"]:
        lines.append(f"({r['unanswerable']} unanswerable questions not scored)")
    return "\n".join(lines)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


@app.command("reembed")
def reembed() -> None:
    """Re-embed every packet with the configured embedder (the only way an embedding changes)."""
    soul = state.soul()
    embedder = soul.embedder
    with state.out.progress_bars() as progress:
        count = soul.store.reembed(embedder.encode, embedder.model_id, embedder.dim, progress)
    state.out.record({"packets": count, "embed_model": embedder.model_id, "dim": embedder.dim},
                     human=lambda r: f"re-embedded {r['packets']} packets with {r['embed_model']}",
                     id_key="embed_model")


@app.command("reindex")
def reindex() -> None:
    """Rebuild the derived search indexes (vectors, keywords) from the log database."""
    result = state.soul().store.reindex()
    state.out.record(result, human=lambda r: f"reindexed {r['packets']} packets "
                     f"(vector index: {r['vector_kind'] or 'none'})", id_key="packets")
