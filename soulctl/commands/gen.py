"""soulctl gen: generations as history — ls, show, diff, verify, use, gc, materialize."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soulctl.cli import state
from soulctl.cli.output import Column, human_bytes

app = typer.Typer(help="Generations as history: ls, show, diff, verify, seal, use, gc, materialize.",
                  no_args_is_help=True)


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
    state.out.rows((summary(home, gid) for gid in list(reversed(generation_ids(home)))[:limit]), [
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
    record = read_lineage(home, resolve(home, gen)).as_dict()
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


@app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="From this generation.")],
    b: Annotated[str, typer.Argument(help="To this one.")] = "current",
    behaviour: Annotated[bool, typer.Option("--behaviour", help="Also answer the same prompts with both.")] = False,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="Prompts, one per line (default: "
                                                     "recipes/probes.txt).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Sampling seed of the first prompt (then +1 each).")] = 0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per answer.")] = 48,
) -> None:
    """Lineage difference and per-module relative weight deltas ‖B − A‖ / ‖A‖; with
    --behaviour, each prompt answered by both (same sampling, same seed) and its loss under each."""
    from soulctl.generations.history import diff as run

    home = state.home()
    result = run(home, a, b)
    if behaviour:
        from soulctl.evolve.behaviour import compare, read_prompts

        asked = read_prompts(home, prompts)
        with state.out.progress_bars() as progress:
            result["behaviour"] = compare(home, a, b, asked, seed, max_tokens, progress)
    state.out.record(result, human=_render_diff, id_key="b")


def _render_diff(d: dict) -> str:
    lines = [f"{d['a']} → {d['b']}", f"layers added:   {', '.join(d['layers_added']) or '-'}",
             f"layers removed: {', '.join(d['layers_removed']) or '-'}"]
    lines += [f"{key}: {change['a']} → {change['b']}" for key, change in d["changed"].items()]
    lines.append(f"weights: overall {d['weights']['overall']:.6f}")
    lines += [f"  {module:14s} {value:.6f}" for module, value in d["weights"]["modules"].items()]
    if seen := d.get("behaviour"):
        for i, row in enumerate(seen["prompts"], 1):
            lines += [f"\n[{i}] {row['prompt']}", f"  {d['a']} ({row['a']['loss']:.3f}): {row['a']['answer']}",
                      f"  {d['b']} ({row['b']['loss']:.3f}): {row['b']['answer']}"
                      + ("" if row["changed"] else "  (same)")]
        s = seen["summary"]
        lines.append(f"\n{s['changed']} of {s['prompts']} answers changed; mean loss change "
                     f"{s['mean_loss_change']:+.4f} nats/token (seed {seen['seed']})")
    return "\n".join(lines)


@app.command("use")
def use(
    gen: Annotated[str, typer.Argument(help="The generation to serve from now on.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until a running server serves it.")] = True,
) -> None:
    """Point `generations/current` at GEN (an atomic switch). A running `soulctl serve` in this
    home prepares GEN beside the old generation and switches between turns; this waits until it
    serves GEN (--no-wait: it follows on its own within a second)."""
    from soulctl.errors import NotFound
    from soulctl.generations import dropped_files, resolve, set_current
    from soulctl.home import control

    home = state.home()
    gid = resolve(home, gen)
    if dropped_files(home, gid):
        raise NotFound(f"{gid} has no weights (dropped by gc)", hint=f"soulctl gen materialize {gid}")
    set_current(home, gid)
    served = control.ask(home, {"op": "follow"}, timeout=1800) if wait else None
    record = {"current": gid, "served": served and served.get("generation"),
              "server": (control.running(home) or {}).get("url")}
    state.out.record(record, id_key="current", human=lambda d: f"current → {d['current']}" + (
        f"; the server at {d['server']} serves it now" if d["served"] == gid else ""))
