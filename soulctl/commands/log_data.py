"""soulctl log, the log as data: export, sql, eval, reembed, reindex (the log's other verbs —
add, ls, show, search — are in log.py; cli/main.py puts them under one `log`)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from soulctl.cli import options, state
from soulctl.cli.output import Column, table
from soulctl.errors import InvalidInput, NotFound

app = typer.Typer()


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
        with output_path(target, force, soul) as tmp:
            count = soul.store.export(fmt, str(tmp), with_embeddings)
    except BrokenPipeError:
        from soulctl.cli.output import PipeClosed

        raise PipeClosed from None
    if target != STDOUT:
        state.out.hint(f"exported {count} packets to {output}")


@app.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help="A read-only SELECT over `log`, `packets`, `resonance_marks`.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds the query may run, at most a day (exit 7 past it).", min=0.1, max=86400)] = 30.0,
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
    semantic and keyword, overall and per category (each cell: recall@k, then MRR).

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
             *(_cell(m["categories"].get(c, {})) for c in categories)]
            for mode, m in r["modes"].items()]
    counts = next(iter(r["modes"].values()))["categories"] if r["modes"] else {}
    rows.append(["questions", str(r["scored"]), "", *(str(counts.get(c, {}).get("questions", 0)) for c in categories)])
    lines = table(head, rows, ["left"] + ["right"] * (len(head) - 1))
    if r["unanswerable"]:
        lines.append(f"({r['unanswerable']} unanswerable questions not scored)")
    return "\n".join(lines)


def _cell(figures: dict) -> str:
    """A category's recall@k and MRR in one cell."""
    if figures.get("recall") is None:
        return "-"
    return f"{_pct(figures['recall'])} {figures['mrr']:.3f}"


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
