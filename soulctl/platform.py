"""The platform's own scheduler and supervisor, the way `git maintenance start` uses them:
systemd user units on Linux (when a user manager runs), launchd agents on macOS, a marked
crontab block elsewhere. `schedule` (the nightly evolve: a timer) and `service` (serve, kept
running: Restart=on-failure / KeepAlive) are both units written here; never a loop of our own.

A unit belongs to one home (named by a hash of its path, so several souls can live on one
machine); data/<kind>.json remembers what was installed, for `status` and `remove`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from soulctl.errors import InvalidInput, NotFound, Unavailable
from soulctl.home import Home

SCHEDULERS = ("auto", "systemd", "launchd", "cron")


@dataclass
class Unit:
    kind: str  # schedule (a timer for evolve) | service (serve, supervised)
    scheduler: str  # systemd | launchd | cron
    name: str
    command: list[str]
    log: str
    files: dict[str, str] = field(default_factory=dict)  # path → content (systemd, launchd)
    cron_block: str | None = None
    details: dict = field(default_factory=dict)  # at, every … as the kind records them


def pick(scheduler: str, allowed=SCHEDULERS) -> str:
    """The platform's scheduler: launchd on macOS, systemd when a user manager runs, else cron."""
    if scheduler not in allowed:
        raise InvalidInput(f"unknown scheduler {scheduler!r}", hint=f"use one of {', '.join(allowed)}")
    if scheduler != "auto":
        return scheduler
    if sys.platform == "darwin":
        return "launchd"
    if shutil.which("systemctl") and subprocess.run(["systemctl", "--user", "show-environment"],
                                                    capture_output=True).returncode == 0:
        return "systemd"
    return "cron"


def unit_name(kind: str, home: Home) -> str:
    return f"soulctl-{kind}-" + hashlib.sha256(str(home.root.resolve()).encode()).hexdigest()[:10]


def soulctl_command(home: Home, *args: str) -> list[str]:
    """This soulctl, for this home: the interpreter it runs on, so a unit runs the same install."""
    return [sys.executable, "-m", "soulctl", "--home", str(home.root.resolve()), *args]


def systemd_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"


def launch_agents_dir() -> Path:
    return Path.home() / "Library" / "LaunchAgents"


def systemd_service(description: str, root: Path, command: list[str], log: str, supervised: bool) -> str:
    """A oneshot run (a timer's job) or a supervised service restarted when it fails."""
    shell = f"{shlex.join(command)} >> {shlex.quote(log)} 2>&1"
    body = (f"[Unit]\nDescription={description}\n\n[Service]\n"
            + ("Type=simple\nRestart=on-failure\nRestartSec=5\nKillSignal=SIGTERM\nTimeoutStopSec=60\n"
               if supervised else "Type=oneshot\n")
            + f"WorkingDirectory={root}\nExecStart=/bin/sh -c {shlex.quote('exec ' + shell if supervised else shell)}\n")
    if supervised:
        body += "\n[Install]\nWantedBy=default.target\n"
    return body


def systemd_timer(description: str, calendar: str) -> str:
    return (f"[Unit]\nDescription={description}\n\n[Timer]\nOnCalendar={calendar}\nPersistent=true\n\n"
            "[Install]\nWantedBy=timers.target\n")


def launchd_plist(label: str, command: list[str], root: Path, log: str, interval: str | None = None,
                  keep_alive: bool = False) -> str:
    args = "".join(f"<string>{_xml(a)}</string>" for a in command)
    when = f"<key>StartCalendarInterval</key><dict>{interval}</dict>" if interval else ""
    alive = "<key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict><key>RunAtLoad</key><true/>" \
        if keep_alive else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
            f'<plist version="1.0"><dict><key>Label</key><string>{label}</string>'
            f"<key>ProgramArguments</key><array>{args}</array>"
            f"<key>WorkingDirectory</key><string>{_xml(str(root))}</string>{when}{alive}"
            f"<key>StandardOutPath</key><string>{_xml(log)}</string>"
            f"<key>StandardErrorPath</key><string>{_xml(log)}</string></dict></plist>\n")


def cron_block(name: str, root: Path, when: str, command: list[str], log: str, what: str) -> str:
    shell = f"{shlex.join(command)} >> {shlex.quote(log)} 2>&1"
    return (f"# BEGIN {name} ({what} for {root}; `soulctl` removes it)\n"
            f"{when} cd {shlex.quote(str(root))} && {shell}\n# END {name}\n")


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def preview(unit: Unit) -> dict:
    """What `install --dry-run` shows: the files and the crontab block it would write."""
    return {"dry_run": True, "kind": unit.kind, "scheduler": unit.scheduler, "name": unit.name,
            "files": unit.files, "crontab": unit.cron_block, "command": unit.command, "log": unit.log,
            **unit.details}


def preview_text(r: dict) -> str:
    parts = [f"# {r['scheduler']}: {r['name']}"]
    parts += [f"--- {path}\n{content.rstrip()}" for path, content in r["files"].items()]
    if r["crontab"]:
        parts.append(f"--- crontab block\n{r['crontab'].rstrip()}")
    return "\n".join(parts)


# -- installing -----------------------------------------------------------------------------
def install(home: Home, unit: Unit) -> dict:
    """Install `unit`, replacing this home's previous one of its kind (whatever its scheduler),
    and start it (a service now, a timer at its time)."""
    if installed(home, unit.kind):
        remove(home, unit.kind)
    home.data.mkdir(parents=True, exist_ok=True)
    if unit.scheduler == "cron":
        _crontab(without(_crontab_read(), unit.name) + unit.cron_block)
    else:
        for path, content in unit.files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
        if unit.scheduler == "systemd":
            _run(["systemctl", "--user", "daemon-reload"])
            started = f"{unit.name}.timer" if unit.kind == "schedule" else f"{unit.name}.service"
            _run(["systemctl", "--user", "enable", "--now", started])
        else:
            plist = next(iter(unit.files))
            subprocess.run(["launchctl", "bootout", f"gui/{os.getuid()}", plist], capture_output=True)
            _run(["launchctl", "bootstrap", f"gui/{os.getuid()}", plist])
    record = {**asdict(unit), "installed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    (home.data / f"{unit.kind}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def remove(home: Home, kind: str) -> dict:
    record = installed(home, kind)
    if record is None:
        raise NotFound(f"no {kind} installed for this home", hint=f"soulctl {kind} install")
    if record["scheduler"] == "cron":
        _crontab(without(_crontab_read(), record["name"]))
    elif record["scheduler"] == "systemd":
        started = f"{record['name']}.timer" if kind == "schedule" else f"{record['name']}.service"
        subprocess.run(["systemctl", "--user", "disable", "--now", started], capture_output=True)
        for path in record["files"]:
            Path(path).unlink(missing_ok=True)
        subprocess.run(["systemctl", "--user", "daemon-reload"], capture_output=True)
    else:
        for path in record["files"]:
            subprocess.run(["launchctl", "bootout", f"gui/{os.getuid()}", path], capture_output=True)
            Path(path).unlink(missing_ok=True)
    (home.data / f"{kind}.json").unlink()
    return record


def installed(home: Home, kind: str) -> dict | None:
    path = home.data / f"{kind}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def active(record: dict) -> bool | None:
    """Whether the platform runs the unit now (None where it cannot say)."""
    if record["scheduler"] == "systemd":
        unit = f"{record['name']}.{'timer' if record['kind'] == 'schedule' else 'service'}"
        proc = subprocess.run(["systemctl", "--user", "is-active", unit], capture_output=True, text=True)
        return proc.stdout.strip() == "active"
    if record["scheduler"] == "launchd":
        label = Path(next(iter(record["files"]))).stem
        return subprocess.run(["launchctl", "list", label], capture_output=True).returncode == 0
    return None


def _crontab_read() -> str:
    if not shutil.which("crontab"):
        raise Unavailable("no crontab on this system", hint="install cron, or use --scheduler systemd")
    proc = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""  # "no crontab for user" is an empty one


def without(table: str, name: str) -> str:
    """The crontab without this unit's marked block (other lines are kept as they are)."""
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
                          hint="run the install with --dry-run to see what it would install")
