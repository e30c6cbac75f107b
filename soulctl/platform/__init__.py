"""The platform's own scheduler and supervisor, the way `git maintenance start` uses them:
systemd user units on Linux (when a user manager runs), launchd agents on macOS, a marked
crontab block elsewhere. `schedule` (the nightly evolve: a timer) and `service` (serve, kept
running: Restart=on-failure / KeepAlive) are both units written here; never a loop of our own.

A unit belongs to one home (named by a hash of its path, so several souls can live on one
machine); data/<kind>.json remembers what was installed, for `status` and `remove`. All unit
text is written by units.py, which escapes every value for its format or refuses it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
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


def manager_runs() -> bool:
    """Whether a systemd user manager answers here (containers and ssh sessions often lack one)."""
    return bool(shutil.which("systemctl")) and subprocess.run(
        ["systemctl", "--user", "show-environment"], capture_output=True).returncode == 0


def pick(scheduler: str, allowed=SCHEDULERS) -> str:
    """The platform's scheduler: launchd on macOS, systemd when a user manager runs, else cron."""
    if scheduler not in allowed:
        raise InvalidInput(f"unknown scheduler {scheduler!r}", hint=f"use one of {', '.join(allowed)}")
    if scheduler != "auto":
        return scheduler
    if sys.platform == "darwin":
        return "launchd"
    return "systemd" if manager_runs() else "cron"


def native() -> str:
    """The supervisor this platform has, whether or not it runs now: what a dry run shows."""
    return "launchd" if sys.platform == "darwin" else "systemd"


def unit_name(kind: str, home: Home) -> str:
    return f"soulctl-{kind}-" + hashlib.sha256(str(home.root.resolve()).encode()).hexdigest()[:10]


def soulctl_command(home: Home, *args: str) -> list[str]:
    """This soulctl, for this home: the interpreter it runs on, so a unit runs the same install."""
    return [sys.executable, "-m", "soulctl", "--home", str(home.root.resolve()), *args]


def systemd_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"


def launch_agents_dir() -> Path:
    return Path.home() / "Library" / "LaunchAgents"


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


def absent(scheduler: str) -> str | None:
    """Why `scheduler` cannot take a unit on this machine now (None when it can)."""
    if scheduler == "cron" and not shutil.which("crontab"):
        return "there is no `crontab` command on this machine"
    if scheduler == "systemd" and not manager_runs():
        return "no systemd user manager runs here (`systemctl --user` cannot connect)"
    if scheduler == "launchd" and not shutil.which("launchctl"):
        return "there is no `launchctl` on this machine"
    return None


# -- installing -----------------------------------------------------------------------------
def install(home: Home, unit: Unit) -> dict:
    """Install `unit`, replacing this home's previous one of its kind (whatever its scheduler),
    and start it (a service now, a timer at its time). When the manager refuses, whatever
    this install wrote is taken back before the error is raised."""
    if installed(home, unit.kind):
        remove(home, unit.kind)
    else:
        leftovers(home, unit.kind, unit.name)  # an earlier install that failed half-way
    home.data.mkdir(parents=True, exist_ok=True)
    if unit.scheduler == "cron":
        _crontab(without(_crontab_read(), unit.name) + unit.cron_block)
    else:
        written: list[Path] = []
        try:
            for path, content in unit.files.items():
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                _write_new(Path(path), content)
                written.append(Path(path))
            _start(unit)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            if unit.scheduler == "systemd" and written:
                subprocess.run(["systemctl", "--user", "daemon-reload"], capture_output=True)
            raise
    record = {**asdict(unit), "installed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    tmp = home.data / f".{unit.kind}.json.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, home.data / f"{unit.kind}.json")
    return record


def _start(unit: Unit) -> None:
    if unit.scheduler == "systemd":
        _run(["systemctl", "--user", "daemon-reload"])
        started = f"{unit.name}.timer" if unit.kind == "schedule" else f"{unit.name}.service"
        _run(["systemctl", "--user", "enable", "--now", started])
    else:
        plist = next(iter(unit.files))
        subprocess.run(["launchctl", "bootout", f"gui/{os.getuid()}", plist], capture_output=True)
        _run(["launchctl", "bootstrap", f"gui/{os.getuid()}", plist])


def _write_new(path: Path, content: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(content)
    os.chmod(tmp, 0o644)  # a unit file is the manager's to read, not a secret
    os.replace(tmp, path)


def remove(home: Home, kind: str) -> dict:
    """Stop and remove this home's unit of `kind`; with no record of one, whatever an earlier
    failed install left (unit files by their name, a crontab block) — else NotFound."""
    record = installed(home, kind)
    if record is None:
        found = leftovers(home, kind)
        if not found:
            raise NotFound(f"no {kind} installed for this home", hint=f"soulctl {kind} install")
        return {"name": found[0], "scheduler": "leftovers", "files": found}
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


UNIT_STEMS = {"service": "serve", "schedule": "evolve"}  # the kind's unit name, in unit_name


def leftovers(home: Home, kind: str, name: str | None = None) -> list[str]:
    """Remove the files and crontab block a unit of `kind` for this home would have, where no
    record says one is installed (an install the manager refused, from an older soulctl that
    left them); returns what it removed."""
    name = name or unit_name(UNIT_STEMS[kind], home)
    gone = []
    label = name.replace(f"soulctl-{UNIT_STEMS[kind]}-", f"ai.soulctl.{UNIT_STEMS[kind]}.")
    for path in (systemd_dir() / f"{name}.service", systemd_dir() / f"{name}.timer",
                 launch_agents_dir() / f"{label}.plist"):
        if path.is_file() or path.is_symlink():
            path.unlink()
            gone.append(str(path))
    if shutil.which("crontab"):
        table = _crontab_read()
        if f"# BEGIN {name}" in table:
            _crontab(without(table, name))
            gone.append(f"crontab block {name}")
    return gone


def installed(home: Home, kind: str) -> dict | None:
    """The record of this home's unit of `kind`; None when there is none. A record that is
    not one (corrupt, truncated) is InvalidInput naming the file, never a crash."""
    path = home.data / f"{kind}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path} is not a record of an installed {kind} ({exc})",
                           hint=f"delete it and run `soulctl {kind} install` again") from None
    if not isinstance(record, dict) or not {"scheduler", "name", "files", "kind"} <= set(record) \
            or not isinstance(record["files"], (dict, list)) or not isinstance(record.get("details", {}), dict):
        raise InvalidInput(f"{path} is not a record of an installed {kind} (fields are missing)",
                           hint=f"delete it and run `soulctl {kind} install` again")
    return record


def active(record: dict) -> bool | None:
    """Whether the platform runs the unit now (None where it cannot say)."""
    if record["scheduler"] == "systemd" and shutil.which("systemctl"):
        unit = f"{record['name']}.{'timer' if record['kind'] == 'schedule' else 'service'}"
        proc = subprocess.run(["systemctl", "--user", "is-active", unit], capture_output=True, text=True)
        return proc.stdout.strip() == "active"
    if record["scheduler"] == "launchd" and shutil.which("launchctl"):
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
