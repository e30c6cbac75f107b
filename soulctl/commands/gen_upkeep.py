"""soulctl gen (upkeep verbs): verify, seal, gc, materialize — keeping generations sound and
their weights where they are needed. The history verbs are in gen.py."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soulctl.cli import options, state

app = typer.Typer(help="Generations as history: ls, show, diff, verify, seal, use, gc, materialize.",
                  no_args_is_help=True)


@app.command("verify")
def verify(
    gen: Annotated[Optional[str], typer.Argument(help="A generation; default: all of them.")] = None,
) -> None:
    """Re-hash every file against lineage.json and check the lineage chain; exit 1 naming
    each file that differs.

    Reports modified, missing and extra files, and lineages that are unsealed, changed after
    sealing or not linked to their parent, back to generation 0 — which is compared with the
    shipped model re-derived (once per machine). Generations whose weights were dropped by
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
    note = f"\n  note: {r['note']}" if r.get("note") else ""
    if r["ok"]:
        return f"{r['id']}  ok  ({r['files']} files{', weights dropped' if r['dropped'] else ''}; lineage sealed, " \
               f"chained to the anchor){note}"
    lines = [f"{r['id']}  FAILED"]
    lines += [f"  lineage:  {p}" for p in r["lineage"]]
    lines += [f"  modified: {p}" for p in r["modified"]]
    lines += [f"  missing:  {p}" for p in r["missing"]]
    lines += [f"  extra:    {p}" for p in r["extra"]]
    return "\n".join(lines) + note


@app.command("seal")
def seal(yes: options.Yes = False) -> None:
    """Seal the generations of a home made before lineages were sealed (or whose key was lost).

    Every file must match its manifest and generation 0 the shipped model re-derived; then each
    lineage gets its digests and a seal made with a new key in data/lineage.key. From then on
    `gen verify` catches any change to a generation's files or lineage.
    """
    from soulctl.errors import UsageError
    from soulctl.generations.verify import seal_home

    if not yes:
        raise UsageError("sealing trusts the generations as they are now", hint="check them, then pass --yes")
    with state.out.progress_bars() as progress:
        result = seal_home(state.home(), progress)
    state.out.record(result, id_key=None, human=lambda r: (
        f"sealed {', '.join(r['sealed'])}" if r["sealed"] else f"all {r['generations']} generations were sealed already"))


@app.command("gc")
def gc(keep: Annotated[int, typer.Option("--keep", help="Keep the weights of the newest N.")] = 3) -> None:
    """Drop the weights of old generations; keep lineage and adapters (never the anchor or current)."""
    from soulctl.generations.history import gc as run

    dropped = run(state.home(), keep)
    state.out.record({"dropped": dropped}, id_key=None, human=lambda d: (
        f"dropped the weights of {', '.join(d['dropped'])}" if d["dropped"] else "nothing to drop"))


@app.command("materialize")
def materialize(gen: Annotated[str, typer.Argument(help="The generation to rebuild.")]) -> None:
    """Rebuild a generation's weights from its lineage; exit 1 unless sha256-identical."""
    from soulctl.generations.history import materialize as run

    with state.out.progress_bars() as progress:
        result = run(state.home(), gen, progress)
    state.out.record(result, human=lambda d: (
        f"{d['id']}: rebuilt {', '.join(d['files'])}, sha256 identical"
        + (f"; restored {len(d['restored'])} file(s)" if d["restored"] else "")))
