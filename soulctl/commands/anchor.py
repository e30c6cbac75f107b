"""soulctl anchor: drift of each generation from the golden anchor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soulctl.cli import options, state

app = typer.Typer(help="The golden anchor: drift, absorption, checks, plots.", no_args_is_help=True)


def _render(d: dict) -> str:
    lines = [f"{d['id']} against the anchor {d['anchor']}",
             f"weight drift      {d['drift']:.6f}  " + " ".join(
                 f"{k} {v:.6f}" for k, v in (d["weights"].get("modules") or {}).items() if v),
             f"probe loss        {d['probe_loss']:.4f} (ppl {d['probe_ppl']}) vs anchor "
             f"{d['anchor_probe_loss']:.4f} (ppl {d['anchor_probe_ppl']}), Δ {d['probe_loss_delta']:+.4f}"]
    for b in d["buffers"]:
        lines.append(f"buffer {b['buffer']}  loss {b['parent_loss']:.4f} in {d['parent']} → "
                     f"{b['loss']:.4f} (ppl {b['parent_ppl']} → {b['ppl']})")
    if d["absorption"] is not None:
        lines.append(f"absorption        {d['absorption']:+.4f} nats/token")
    if d.get("held_out_absorption") is not None:
        lines.append(f"held out          {d['held_out_absorption']:+.4f} nats/token (replies the night did not train on)")
    for n in d.get("nights") or []:
        kept = "  ".join(f"{kind} {n[kind]['kept']:+.4f} of {n[kind]['absorbed']:+.4f}"
                         + (f" ({n[kind]['retention']:.2f})" if n[kind]["retention"] is not None else "")
                         for kind in ("trained", "held_out") if kind in n)
        lines.append(f"night {n['generation']} ({n['buffer']})  kept {kept}")
    return "\n".join(lines)


@app.command("show")
def show() -> None:
    """The anchor and the current generation's drift from it."""
    drift(None, False)


@app.command("drift")
def drift(gen: Annotated[Optional[str], typer.Argument(help="A generation (default: current).")] = None,
          nights: Annotated[bool, typer.Option("--nights", help="Also how much of every night it absorbed the generation still holds (a loss per night's buffer).")] = False) -> None:
    """Weight drift per module type and overall; probe loss vs the anchor; absorption (and on
    the slice the night held out, when it held one); with --nights, retention of every night."""
    from soulctl.evolve.anchor import drift as run

    report = run(state.home(), gen, nights=nights)
    state.out.record(report, human=_render)


@app.command("check")
def check(
    gen: Annotated[Optional[str], typer.Argument(help="A generation (default: current).")] = None,
    max_drift: Annotated[Optional[float], typer.Option(help="Largest allowed relative weight drift.")] = None,
    max_probe_loss: Annotated[Optional[float], typer.Option(help="Largest allowed probe loss (nats/token).")] = None,
) -> None:
    """Exit 1 when a generation is past a limit, so scripts can refuse it.

    Without flags the limits come from recipes/anchor.yaml (max_drift, max_probe_loss_delta).
    """
    from soulctl.evolve.anchor import gate

    report, failures = gate(state.soul(), gen, max_drift, max_probe_loss)
    state.out.record({**report, "ok": not failures, "failures": failures}, human=lambda d: (
        f"{d['id']}: " + ("ok" if d["ok"] else "; ".join(d["failures"]))))
    if failures:
        state.out.error(f"{report['id']} is past its limits", hint="keep the parent: soulctl gen use PARENT")
        raise typer.Exit(1)


@app.command("plot")
def plot(
    path: Annotated[Path, typer.Argument(help="The image to write (.png, .svg, .pdf …).")],
    force: options.Force = False,
) -> None:
    """Plot drift and absorption across generations."""
    from soulctl.evolve.anchor import plot as run
    from soulctl.outfile import check_output, image_format, output_path

    soul = state.soul()
    check_output(path, force, soul)  # the home's own state first: that refusal matters most
    fmt = image_format(path)
    with output_path(path, force, soul) as tmp:
        reports = run(soul.home, tmp, fmt)
    state.out.record({"path": str(path), "generations": [r["id"] for r in reports]}, id_key="path",
                     human=lambda d: f"wrote {d['path']} ({len(d['generations'])} generations)")
