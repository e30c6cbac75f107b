"""schedule: `soulctl evolve` run by the platform's own scheduler, the way `git maintenance
start` does it — a systemd user timer (Persistent=true: a run missed while the machine slept
happens at the next boot) on Linux, a launchd agent on macOS, a marked crontab block
elsewhere. Never a sleep loop of our own. Output is appended to data/evolve.log.

Each home gets its own unit (named by a hash of its path), so several souls can keep habits
on one machine; data/schedule.json remembers what was installed, for `status` and `remove`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from soulctl.errors import InvalidInput, NotFound, Unavailable
from soulctl.home import Home

SCHEDULERS = ("auto", "systemd", "launchd", "cron")
EVERY = ("day", "week")
STATE = "schedule.json"


@dataclass
class Job:
    scheduler: str
    at: str  # HH:MM, local time
    every: str  # day | week (Mondays)
    name: str
    command: list[str]
    log: str
    files: dict[str, str]  # path → content, for systemd and launchd
    cron_block: str | None = None


def parse_at(at: str) -> tuple[int, int]:
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at.strip())
    if not m:
        raise InvalidInput(f"--at {at!r} is not a time of day", hint="use HH:MM, e.g. --at 03:00")
    return int(m.group(1)), int(m.group(2))


def pick(scheduler: str) -> str:
    """The platform's scheduler: launchd on macOS, systemd when a user manager runs, else cron."""
    if scheduler not in SCHEDULERS:
        raise InvalidInput(f"unknown scheduler {scheduler!r}", hint=f"use one of {', '.join(SCHEDULERS)}")
    if scheduler != "auto":
        return scheduler
    if sys.platform == "darwin":
        return "launchd"
    if shutil.which("systemctl") and subprocess.run(["systemctl", "--user", "show-environment"],
                                                    capture_output=True).returncode == 0:
        return "systemd"
    return "cron"


def job(home: Home, scheduler: str, at: str, every: str) -> Job:
    if every not in EVERY:
        raise InvalidInput(f"--every {every!r}", hint="use day or week")
    hour, minute = parse_at(at)
    at = f"{hour:02d}:{minute:02d}"
    root = home.root.resolve()
    name = "soulctl-evolve-" + hashlib.sha256(str(root).encode()).hexdigest()[:10]
    command = [sys.executable, "-m", "soulctl", "--home", str(root), "evolve"]
    log = str(root / "data" / "evolve.log")
    shell = f"{shlex.join(command)} >> {shlex.quote(log)} 2>&1"
    files: dict[str, str] = {}
    cron_block = None
    if scheduler == "systemd":
        units = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"
        calendar = ("Mon " if every == "week" else "") + f"*-*-* {hour:02d}:{minute:02d}:00"
        files[str(units / f"{name}.service")] = (
            f"[Unit]\nDescription=soulctl evolve for {root}\n\n[Service]\nType=oneshot\n"
            f"WorkingDirectory={root}\nExecStart=/bin/sh -c {shlex.quote(shell)}\n")
        files[str(units / f"{name}.timer")] = (
            f"[Unit]\nDescription=soulctl evolve for {root}, every {every} at {at}\n\n[Timer]\n"
            f"OnCalendar={calendar}\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n")
    elif scheduler == "launchd":
        label = name.replace("soulctl-evolve-", "ai.soulctl.evolve.")
        interval = f"<key>Hour</key><integer>{hour}</integer><key>Minute</key><integer>{minute}</integer>"
        if every == "week":
            interval += "<key>Weekday</key><integer>1</integer>"
        args = "".join(f"<string>{_xml(a)}</string>" for a in command)
        files[str(Path.home() / "Library" / "LaunchAgents" / f"{label}.plist")] = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
            f'<plist version="1.0"><dict><key>Label</key><string>{label}</string>'
            f"<key>ProgramArguments</key><array>{args}</array>"
            f"<key>WorkingDirectory</key><string>{_xml(str(root))}</string>"
            f"<key>StartCalendarInterval</key><dict>{interval}</dict>"
            f"<key>StandardOutPath</key><string>{_xml(log)}</string>"
            f"<key>StandardErrorPath</key><string>{_xml(log)}</string></dict></plist>\n")
    else:
        day = "1" if every == "week" else "*"
        cron_block = (f"# BEGIN {name} (soulctl evolve for {root}; `soulctl schedule remove` deletes it)\n"
                      f"{minute} {hour} * * {day} cd {shlex.quote(str(root))} && {shell}\n# END {name}\n")
    return Job(scheduler, at, every, name, command, log, files, cron_block)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def install(home: Home, job_: Job) -> dict:
    """Install `job_`, replacing this home's previous schedule (whatever its scheduler)."""
    if installed(home):
        remove(home)
    (home.data).mkdir(parents=True, exist_ok=True)
    if job_.scheduler == "cron":
        _crontab(_without(_crontab_read(), job_.name) + job_.cron_block)
    else:
        for path, content in job_.files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
        if job_.scheduler == "systemd":
            _run(["systemctl", "--user", "daemon-reload"])
            _run(["systemctl", "--user", "enable", "--now", f"{job_.name}.timer"])
        else:
            plist = next(iter(job_.files))
            subprocess.run(["launchctl", "bootout", f"gui/{os.getuid()}", plist], capture_output=True)
            _run(["launchctl", "bootstrap", f"gui/{os.getuid()}", plist])
    record = {**asdict(job_), "installed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    (home.data / STATE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def remove(home: Home) -> dict:
    record = installed(home)
    if record is None:
        raise NotFound("no schedule installed for this home", hint="soulctl schedule install")
    if record["scheduler"] == "cron":
        _crontab(_without(_crontab_read(), record["name"]))
    elif record["scheduler"] == "systemd":
        subprocess.run(["systemctl", "--user", "disable", "--now", f"{record['name']}.timer"], capture_output=True)
        for path in record["files"]:
            Path(path).unlink(missing_ok=True)
        subprocess.run(["systemctl", "--user", "daemon-reload"], capture_output=True)
    else:
        for path in record["files"]:
            subprocess.run(["launchctl", "bootout", f"gui/{os.getuid()}", path], capture_output=True)
            Path(path).unlink(missing_ok=True)
    (home.data / STATE).unlink()
    return record


def installed(home: Home) -> dict | None:
    path = home.data / STATE
    return json.loads(path.read_text()) if path.is_file() else None


def next_run(record: dict, now: dt.datetime | None = None) -> str:
    """The next time the schedule fires, local time (Mondays for --every week)."""
    now = now or dt.datetime.now().astimezone()
    hour, minute = parse_at(record["at"])
    run = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if run <= now:
        run += dt.timedelta(days=1)
    if record["every"] == "week":
        run += dt.timedelta(days=(0 - run.weekday()) % 7)
    return run.isoformat(timespec="minutes")


def _crontab_read() -> str:
    if not shutil.which("crontab"):
        raise Unavailable("no crontab on this system", hint="install cron, or use --scheduler systemd")
    proc = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""  # "no crontab for user" is an empty one


def _without(table: str, name: str) -> str:
    """The crontab without this job's marked block (other lines are kept as they are)."""
    kept, inside = [], False
    for line in table.splitlines(keepends=True):
        if line.startswith(f"# BEGIN {name}"):
            inside = True
        elif inside and line.startswith(f"# END {name}"):
            inside = False
        elif not inside:
            kept.append(line)
    text = "".join(kept)
    return text if not text or text.endswith("\n") else text + "\n"


def _crontab(text: str) -> None:
    _run(["crontab", "-"], input=text)


def _run(cmd: list[str], input: str | None = None) -> None:
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = ((proc.stderr or proc.stdout).strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise Unavailable(f"`{' '.join(cmd[:3])}` failed: {detail}",
                          hint="run `soulctl schedule install --dry-run` to see what it would install")
