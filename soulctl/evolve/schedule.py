"""schedule: `soulctl evolve` run by the platform's own scheduler (platform.py) — a systemd user
timer (Persistent=true: a run missed while the machine slept happens at the next boot) on
Linux, a launchd agent on macOS, a marked crontab block elsewhere. Never a sleep loop of our
own. Output is appended to data/evolve.log (one line per stage, with its time).
"""

from __future__ import annotations

import datetime as dt
import re

from soulctl import platform
from soulctl.errors import EXIT_QUIET, InvalidInput
from soulctl.home import Home
from soulctl.platform import unittext

EVERY = ("day", "week")
KIND = "schedule"


def parse_at(at: str) -> tuple[int, int]:
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at.strip())
    if not m:
        raise InvalidInput(f"--at {at!r} is not a time of day", hint="use HH:MM, e.g. --at 03:00")
    return int(m.group(1)), int(m.group(2))


def job(home: Home, scheduler: str, at: str, every: str) -> platform.Unit:
    """The nightly (or weekly, Mondays) evolve as a unit of `scheduler`."""
    if every not in EVERY:
        raise InvalidInput(f"--every {every!r}", hint="use day or week")
    hour, minute = parse_at(at)
    at = f"{hour:02d}:{minute:02d}"
    root = home.root.resolve()
    name = platform.unit_name("evolve", home)
    command = platform.soulctl_command(home, "evolve")
    log = str(root / "data" / "evolve.log")
    unit = platform.Unit(KIND, scheduler, name, command, log, details={"at": at, "every": every})
    if scheduler == "systemd":
        units = platform.systemd_dir()
        calendar = ("Mon " if every == "week" else "") + f"*-*-* {hour:02d}:{minute:02d}:00"
        unit.files[str(units / f"{name}.service")] = unittext.systemd_service(
            f"soulctl evolve for {root}", root, command, log, supervised=False, success=(EXIT_QUIET,))
        unit.files[str(units / f"{name}.timer")] = unittext.systemd_timer(
            f"soulctl evolve for {root}, every {every} at {at}", calendar)
    elif scheduler == "launchd":
        label = name.replace("soulctl-evolve-", "ai.soulctl.evolve.")
        interval = {"Hour": hour, "Minute": minute, **({"Weekday": 1} if every == "week" else {})}
        unit.files[str(platform.launch_agents_dir() / f"{label}.plist")] = unittext.launchd_plist(
            label, command, root, log, interval=interval)
    else:
        day = "1" if every == "week" else "*"
        unit.cron_block = unittext.cron_block(name, root, f"{minute} {hour} * * {day}", command, log,
                                              "soulctl evolve", success=(EXIT_QUIET,))
    return unit


def install(home: Home, unit: platform.Unit) -> dict:
    return platform.install(home, unit)


def remove(home: Home) -> dict:
    return platform.remove(home, KIND)


def installed(home: Home) -> dict | None:
    record = platform.installed(home, KIND)
    details = (record or {}).get("details") or {}
    if record is not None and not (isinstance(details.get("at"), str) and details.get("every") in EVERY):
        raise InvalidInput(f"{home.data / 'schedule.json'} is not a record of a schedule (`at` and `every`)",
                           hint="delete it and run `soulctl schedule install` again")
    return record


def next_run(record: dict, now: dt.datetime | None = None) -> str:
    """The next time the schedule fires, local time (Mondays for --every week)."""
    now = now or dt.datetime.now().astimezone()
    details = record.get("details") or record
    hour, minute = parse_at(details["at"])
    run = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if run <= now:
        run += dt.timedelta(days=1)
    if details["every"] == "week":
        run += dt.timedelta(days=(0 - run.weekday()) % 7)
    return run.isoformat(timespec="minutes")


def start_now(home: Home) -> dict:
    """A night started now, as its own process: the installed schedule's unit where the
    platform can start one on demand (systemd, launchd), else a detached `soulctl evolve`
    appending to data/evolve.log as the scheduled nights do. Refused while a cycle runs."""
    import os
    import subprocess
    from pathlib import Path

    from soulctl.errors import Unavailable
    from soulctl.evolve.watch import running

    if (state := running(home)) is not None:
        raise Unavailable(f"a night is already running (pid {state['pid']}, {state.get('stage') or 'starting'})",
                       hint="watch it with `soulctl status`")
    record = installed(home)
    if record is not None and record["scheduler"] in ("systemd", "launchd"):
        unit = (["systemctl", "--user", "start", f"{record['name']}.service"] if record["scheduler"] == "systemd"
                else ["launchctl", "kickstart", f"gui/{os.getuid()}/{Path(next(iter(record['files']))).stem}"])
        proc = subprocess.run(unit, capture_output=True, text=True)
        if proc.returncode == 0:
            return {"started": "unit", "name": record["name"], "scheduler": record["scheduler"]}
    log = home.data / "evolve.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(platform.soulctl_command(home, "evolve"), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=home.root)
    return {"started": "process", "pid": proc.pid, "log": str(log)}
