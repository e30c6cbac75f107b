"""soulctl evolve: one cycle of the nightly habit as one safe step."""

from __future__ import annotations

from typing import Annotated

import typer

from soulctl.cli import state
from soulctl.errors import EXIT_QUIET

HELP = """One evolution cycle as one safe step: score → buffer → dream → merge → anchor check.

Only moments no layer of the current generation has learned go into the buffer. The new
generation becomes `current` only if it passes the anchor check with the limits of
recipes/anchor.yaml; otherwise `current` stays, the generation is kept and marked rejected
(or removed with --remove-rejected), the reason is logged as a system packet, and the exit
code is 1. Fewer new moments than the recipe's min_examples (recipes/resonate.yaml): nothing
happens, one line says how many qualified and how to mark more, exit 10 — a quiet night, which
the units `soulctl schedule install` writes count a success. A step
that fails ends the cycle, logged with the step and the reason, `current` unchanged (the
step's own exit code, else 9). One cycle at a time per home (a second is refused, exit 7).
The steps are recipes/evolve.yaml's. `soulctl schedule install` runs it nightly.

Examples:

  soulctl evolve --dry-run
  soulctl evolve --json | jq .status
"""


def run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (recipes, limits, what is new); change nothing.")] = False,
    remove_rejected: Annotated[bool, typer.Option("--remove-rejected", help="Delete a generation that fails the check instead of keeping it marked.")] = False,
    include_learned: Annotated[bool, typer.Option("--include-learned", help="Train on moments already learned too.")] = False,
) -> None:
    from soulctl.evolve.cycle import evolve

    out = state.out
    soul = state.soul()
    with out.progress_bars() as progress:
        record = evolve(soul, dry_run, remove_rejected, include_learned, progress,
                        say=lambda line: out.info(f"evolve: {line}"),
                        heartbeat=None if out.quiet or out.stderr.isatty() else lambda line: out.info(f"evolve: {line}"))
    if record["status"] == "nothing-new":
        record["mark"] = MARK
    out.record(record, id_key="status", human=_human)
    if record["status"] == "nothing-new":
        raise typer.Exit(EXIT_QUIET)
    if record["status"] == "rejected":
        out.error(f"{record['generation']} rejected: {record['reason']}",
                  hint=f"current stays {record['parent']}; loosen recipes/anchor.yaml or dream gentler")
        raise typer.Exit(1)


MARK = "soulctl resonate top, then soulctl resonate mark ID 1"


def _human(r: dict) -> str:
    if r["status"] == "plan":
        return f"plan from {r['parent']}:\n" + "\n".join(
            f"  {step}: " + ", ".join(f"{k} {v}" for k, v in values.items()) for step, values in r["plan"].items())
    if r["status"] == "nothing-new":
        return f"quiet night: {r['reason']}; mark the replies worth learning: {r['mark']}"
    if r["status"] == "failed":
        return f"failed: {r['reason']}"
    line = (f"{r['status']}: {r['generation']} from {r['parent']} on {r['buffer']} ({r['examples']} moments); "
            f"drift {r['drift']:.6f}, probe loss Δ {r['probe_loss_delta']:+.4f}")
    if r.get("absorption") is not None:
        line += f", absorption {r['absorption']:+.4f}"
    return line + f" in {r['timings']['total']:.0f} s"
