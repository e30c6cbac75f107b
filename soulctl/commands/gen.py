"""soulctl gen: generations as history (ls, show, verify)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soulctl.cli import state
from soulctl.output import Column, human_bytes

app = typer.Typer(help="Generations as history: ls, show, verify.", no_args_is_help=True)


def _drift(value) -> str:
    return "-" if value is None else f"{value:.4f}"


@app.command("ls")
def ls(
    limit: Annotated[Optional[int], typer.Option("-n", "--max-count", help="Show at most N.")] = None,
) -> None:
    """List generations newest first, like `git log`.

    Columns: id, parent, created, adapter layers, drift from the anchor (when measured).
    """
    from soulctl.generations import generation_ids, summary

    home = state.home()
    ids = list(reversed(generation_ids(home)))[:limit]
    rows = (summary(home, gid) for gid in ids)
    state.out.rows(rows, [
        Column("id"), Column("parent", fmt=lambda v: v or "-"), Column("created_at", "created"),
        Column("layers", align="right"), Column("drift", fmt=_drift, align="right"),
        Column("marks", fmt=lambda v: ",".join(v or [])),
    ], empty="no generations yet: run `soulctl init`")


@app.command("show")
def show(
    gen: Annotated[str, typer.Argument(help="gen-0003, 3, current, anchor, current~1.")] = "current",
) -> None:
    """Show a generation's lineage: parent, anchor, adapter layers, recipe, files."""
    from soulctl.generations import read_lineage, resolve

    home = state.home()
    record = read_lineage(home, resolve(home, gen))
    state.out.record(record, human=_render_lineage)


def _render_lineage(r: dict) -> str:
    lines = [f"generation {r['id']}", f"parent:   {r.get('parent') or '-'}",
             f"anchor:   {r.get('anchor') or '-'}", f"created:  {r.get('created_at')}"]
    src = r.get("source")
    if src:
        lines.append(f"source:   {src.get('kind')} {src.get('name')} "
                     f"({src.get('package') or src.get('path')}), dtype {src.get('dtype') or 'as published'}")
    layers = r.get("layers") or []
    lines.append(f"layers:   {len(layers)}")
    for i, layer in enumerate(layers):
        lines.append(f"  {i}: adapter {layer.get('adapter')} density {layer.get('density')} "
                     f"weight {layer.get('weight')} buffer {layer.get('buffer_sha256', '-')[:12]}")
    drift = r.get("drift") or {}
    if drift:
        lines.append("drift:    " + ", ".join(f"{k} {v}" for k, v in drift.items()))
    tools = r.get("tools") or {}
    if tools:
        lines.append("tools:    " + ", ".join(f"{k} {v}" for k, v in tools.items()))
    files = r.get("manifest") or {}
    total = sum(e["bytes"] for e in files.values())
    lines.append(f"files:    {len(files)} ({human_bytes(total)})")
    for name, entry in files.items():
        lines.append(f"  {entry['sha256'][:16]}  {human_bytes(entry['bytes']):>10}  {name}")
    return "\n".join(lines)


@app.command("verify")
def verify(
    gen: Annotated[Optional[str], typer.Argument(help="A generation; default: all of them.")] = None,
) -> None:
    """Re-hash every file against lineage.json; exit 1 naming each file that differs.

    Reports modified, missing and extra files. Generations whose weights were dropped by
    `gen gc` are checked for what remains.
    """
    from soulctl.generations import generation_ids, resolve
    from soulctl.generations import verify as verify_gen

    home = state.home()
    out = state.out
    ids = [resolve(home, gen)] if gen else generation_ids(home)
    failed = 0
    with out.progress_bars() as progress:
        for gid in ids:
            result = verify_gen(home, gid, progress)
            failed += not result.ok
            out.record(result.__dict__, human=_render_verify, id_key="id")
    if failed:
        out.error(f"{failed} generation(s) failed verification",
                  hint="a generation is immutable: `soulctl gen materialize GEN` rebuilds it")
        raise typer.Exit(1)


def _render_verify(r: dict) -> str:
    if r["ok"]:
        return f"{r['id']}  ok  ({r['files']} files{', weights dropped' if r['dropped'] else ''})"
    lines = [f"{r['id']}  FAILED"]
    lines += [f"  modified: {p}" for p in r["modified"]]
    lines += [f"  missing:  {p}" for p in r["missing"]]
    lines += [f"  extra:    {p}" for p in r["extra"]]
    return "\n".join(lines)
