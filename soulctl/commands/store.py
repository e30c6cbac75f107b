"""soulctl store: where the log lives — its backend and state, and moving it between backends."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soulctl.cli import state

app = typer.Typer(help="The log's store: info, migrate between DuckDB and PostgreSQL, stop its server.",
                  no_args_is_help=True)


@app.command("info")
def info() -> None:
    """The backend, counts, sizes, index state and search settings of this home's log.

    Example:

      soulctl store info --json
    """
    record = state.soul().store.info()
    state.out.record(record, id_key="backend", human=_render)


@app.command("migrate")
def migrate(
    to: Annotated[str, typer.Option("--to", help="The target: postgres+embedded, postgresql://user@host/db or duckdb:PATH.")],
    from_: Annotated[Optional[str], typer.Option("--from", help="The source (default: this home's store).")] = None,
    switch: Annotated[bool, typer.Option("--switch", help="After a verified copy, point soul.yaml's store at the target.")] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Packets per transaction.")] = 5000,
) -> None:
    """Copy the log to another store: packets with their ids and vectors byte for byte (no
    re-embedding), resonance marks and notebook/self versions; resumable (run it again after an
    interruption), verified by counts and a checksum. The source is left untouched.

    Examples:

    \b
      soulctl store migrate --to postgres+embedded --switch
      soulctl store migrate --to postgresql://soul@db.example.org/soul
      soulctl store migrate --from postgres+embedded --to duckdb:data/soul.duckdb --switch
    """
    from soulctl.log import open_store
    from soulctl.log.migrate import migrate as run
    from soulctl.log.urls import redact

    home = state.home()
    source = open_store(home, from_) if from_ else state.soul().store
    target = open_store(home, to)
    try:
        with state.out.progress_bars() as progress:
            result = run(source, target, batch, progress)
    finally:
        target.close()
    result["to"] = redact(to)
    if switch:
        from soulctl.home.config import set_store

        set_store(home, to)
        result["switched"] = True
    state.out.record(result, id_key="to", human=lambda r: (
        f"migrated {r['packets']} packets ({r['copied']} copied now), {r['marks']} marks, "
        f"{r['memory_versions']} memory versions to {r['to']}; checksum {r['checksum'][:16]} matches"
        + ("; soul.yaml now points there" if r.get("switched") else "")))
    if not switch:
        state.out.hint(f"to use it: soulctl store migrate --to {redact(to)} --switch (or edit soul.yaml `store:`)")


@app.command("stop")
def stop(
    force: Annotated[bool, typer.Option("--force", help="Stop it even while other processes use it.")] = False,
) -> None:
    """Stop the home's embedded PostgreSQL server now (it also stops when its last user exits).

    Refused (exit 7) while another process — a `soulctl serve` — uses it, unless --force. A
    store that runs no server of its own (DuckDB, a remote PostgreSQL) has nothing to stop.
    """
    record = state.soul().store.stop(force)
    state.out.record(record, id_key="pid", human=lambda r: (
        f"stopped the embedded PostgreSQL (pid {r['pid']})" if r["stopped"]
        else r.get("reason") or "the embedded PostgreSQL is not running"))


def _render(r: dict) -> str:
    lines = [f"backend: {r['backend']}" + (f" ({r['path']})" if r.get("path") else ""),
             f"packets: {r.get('packets', 0)}, marks: {r.get('marks', 0)}, memory versions: {r.get('memory_versions', 0)}"]
    if r.get("embed_model"):
        lines.append(f"vectors: {r['embed_model']} ({r['dim']}-d)")
    if r.get("bytes"):
        lines.append("size: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in r["bytes"].items()))
    if r.get("server"):
        lines.append(f"server: PostgreSQL {r['server']}, pgvector {r['pgvector']}"
                     + (" (embedded)" if r.get("embedded") else ""))
    if r.get("settings"):
        lines.append("settings: " + ", ".join(f"{k} {v}" for k, v in r["settings"].items()))
    if r.get("indexes"):
        lines.append("indexes: " + ", ".join(f"{k}={v}" if not isinstance(v, dict) else
                                             f"{k} {v['bytes'] / 2**20:.1f} MiB{'' if v['valid'] else ' INVALID'}"
                                             for k, v in r["indexes"].items()))
    return "\n".join(lines)
