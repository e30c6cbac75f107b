"""soulctl schedule: run `soulctl evolve` on the platform's own scheduler."""

from __future__ import annotations

from typing import Annotated

import typer

from soulctl.cli import state

app = typer.Typer(help="Run `soulctl evolve` nightly or weekly on the platform's scheduler.",
                  no_args_is_help=True)

Scheduler = Annotated[str, typer.Option("--scheduler", help="auto, systemd (user timer), launchd or cron.")]


@app.command("install")
def install(
    at: Annotated[str, typer.Option("--at", help="Local time of day, HH:MM.")] = "03:00",
    every: Annotated[str, typer.Option("--every", help="day, or week (Mondays).")] = "day",
    scheduler: Scheduler = "auto",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be installed; install nothing.")] = False,
) -> None:
    """Install the schedule: a systemd user timer (Persistent=true) on Linux, a launchd agent on
    macOS, else a marked crontab block. Output goes to data/evolve.log. Replaces this home's
    previous schedule.

    Example:

      soulctl schedule install --at 03:00 --every day --dry-run
    """
    import shlex

    from soulctl import platform
    from soulctl.errors import Unavailable
    from soulctl.evolve import schedule

    home = state.home()
    job = schedule.job(home, platform.pick(scheduler), at, every)
    why = platform.absent(job.scheduler)
    instead = f"run `{shlex.join(job.command)}` at {at} from a scheduler of your own"
    if dry_run:
        preview = platform.preview(job)
        if why:
            preview["unavailable"] = why
            state.out.warn(f"{why}: this cannot be installed here; {instead}")
        state.out.record(preview, id_key="name", human=platform.preview_text)
        return
    if why:
        raise Unavailable(f"cannot install the schedule: {why}", hint=instead)
    record = schedule.install(home, job)
    state.out.record(record, id_key="name", human=lambda r: (
        f"installed {r['name']} ({r['scheduler']}): evolve every {r['details']['every']} at "
        f"{r['details']['at']}; next run {schedule.next_run(r)}; output → {r['log']}"))


@app.command("remove")
def remove() -> None:
    """Remove this home's schedule (other crontab lines are left as they are)."""
    from soulctl.evolve import schedule

    record = schedule.remove(state.home())
    state.out.record({"removed": record["name"], "scheduler": record["scheduler"]}, id_key="removed",
                     human=lambda r: f"removed {r['removed']} ({r['scheduler']})")


@app.command("status")
def status() -> None:
    """The installed schedule, its next run and the last cycle's result."""
    from soulctl.evolve import schedule
    from soulctl.evolve.cycle import last_cycle

    soul = state.soul()
    record = schedule.installed(soul.home)
    last = last_cycle(soul.store)
    result = {"installed": record is not None,
              "scheduler": record and record["scheduler"], "name": record and record["name"],
              "at": record and record["details"]["at"], "every": record and record["details"]["every"],
              "next_run": record and schedule.next_run(record),
              "last": None if last is None else {"ts": last.ts.isoformat(timespec="seconds"), "prose": last.prose,
                                                 "status": (last.meta or {}).get("evolve", {}).get("status")}}
    state.out.record(result, id_key="name", human=lambda r: (
        (f"{r['name']} ({r['scheduler']}): every {r['every']} at {r['at']}, next run {r['next_run']}"
         if r["installed"] else "no schedule installed (soulctl schedule install)")
        + ("\nlast cycle: " + f"{r['last']['ts']} {r['last']['prose']}" if r["last"] else "\nno cycle has run yet")))
