"""The text of every unit soulctl installs — systemd units, launchd plists, crontab blocks —
written in one place, each value escaped for its format or refused.

A path reaches a unit from the user's machine (the home, the interpreter, a token file), so it
may hold anything a file name can: each format has characters with meaning (systemd expands
`%` specifiers and `$` variables and unquotes C escapes; cron turns `%` into a newline; a
shell splits words; XML has entities). Those are escaped; what no format can hold safely — a
newline or any other control character, which would start a new line of the unit — is refused.
"""

from __future__ import annotations

import plistlib
import shlex
from pathlib import Path

from soulctl.errors import InvalidInput


def check_value(text: str, what: str) -> str:
    """`text` unless it holds a control character (a newline would start a line of its own)."""
    bad = next((c for c in text if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029"), None)
    if bad is not None:
        raise InvalidInput(f"{what} holds a control character ({bad!r}), which no unit file or crontab can "
                           f"hold safely: {text!r}", hint="move the soul home (or the file) to a path without one")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid UTF-8: {text!r}", hint="use a path of UTF-8 characters") from None
    return text


# -- systemd --------------------------------------------------------------------------------
def _sd_specifiers(text: str) -> str:
    return text.replace("%", "%%")


def sd_word(text: str, what: str = "a command word") -> str:
    """One word of an Exec line: double-quoted, C escapes and quotes escaped, `%` and `$`
    doubled so systemd expands neither a specifier nor a variable."""
    check_value(text, what)
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _sd_specifiers(quoted).replace("$", "$$") + '"'


def sd_path(path: str, what: str) -> str:
    """A path setting (WorkingDirectory=, append:): absolute, with specifiers escaped; systemd
    takes the rest of the line as it is, so edge whitespace is refused."""
    check_value(path, what)
    if not Path(path).is_absolute() or path != path.strip():
        raise InvalidInput(f"{what} must be an absolute path without leading or trailing spaces: {path!r}")
    return _sd_specifiers(path)


def systemd_service(description: str, root: Path, command: list[str], log: str, supervised: bool,
                    success: tuple[int, ...] = ()) -> str:
    """A oneshot run (a timer's job) or a supervised service restarted when it fails; its
    output appended to `log` by systemd itself (no shell between)."""
    exec_line = " ".join(sd_word(arg, "the command") for arg in command)
    body = [f"[Unit]\nDescription={_sd_specifiers(check_value(description, 'the description'))}\n",
            "[Service]",
            *(["Type=simple", "Restart=on-failure", "RestartSec=5", "KillSignal=SIGTERM", "TimeoutStopSec=60"]
              if supervised else ["Type=oneshot"]),
            *([f"SuccessExitStatus={' '.join(map(str, success))}"] if success else []),
            f"WorkingDirectory={sd_path(str(root), 'the soul home')}",
            f"ExecStart={exec_line}",
            f"StandardOutput=append:{sd_path(log, 'the log file')}",
            f"StandardError=append:{sd_path(log, 'the log file')}"]
    text = "\n".join(body) + "\n"
    if supervised:
        text += "\n[Install]\nWantedBy=default.target\n"
    return text


def systemd_timer(description: str, calendar: str) -> str:
    return (f"[Unit]\nDescription={_sd_specifiers(check_value(description, 'the description'))}\n\n"
            f"[Timer]\nOnCalendar={check_value(calendar, 'the calendar')}\nPersistent=true\n\n"
            "[Install]\nWantedBy=timers.target\n")


# -- launchd --------------------------------------------------------------------------------
def launchd_plist(label: str, command: list[str], root: Path, log: str, interval: dict | None = None,
                  keep_alive: bool = False) -> str:
    """A launchd agent, written by plistlib (XML escaping is its job)."""
    for value, what in [(label, "the label"), (str(root), "the soul home"), (log, "the log file"),
                        *((arg, "the command") for arg in command)]:
        check_value(value, what)
    plist = {"Label": label, "ProgramArguments": list(command), "WorkingDirectory": str(root),
             "StandardOutPath": log, "StandardErrorPath": log}
    if interval:
        plist["StartCalendarInterval"] = interval
    if keep_alive:
        plist.update(KeepAlive={"SuccessfulExit": False}, RunAtLoad=True)
    return plistlib.dumps(plist, sort_keys=False).decode()


# -- cron -----------------------------------------------------------------------------------
def cron_command(root: Path, command: list[str], log: str, success: tuple[int, ...] = ()) -> str:
    """The command field of a crontab line: words quoted for /bin/sh, then `%` escaped for
    cron (which turns a bare one into a newline, feeding the rest to stdin)."""
    for value, what in [(str(root), "the soul home"), (log, "the log file"),
                        *((arg, "the command") for arg in command)]:
        check_value(value, what)
    shell = f"cd {shlex.quote(str(root))} && {shlex.join(command)} >> {shlex.quote(log)} 2>&1"
    for code in success:
        shell += f" || test $? -eq {code}"
    return shell.replace("%", "\\%")


def cron_block(name: str, root: Path, when: str, command: list[str], log: str, what: str,
               success: tuple[int, ...] = ()) -> str:
    line = cron_command(root, command, log, success)
    return (f"# BEGIN {name} ({what} for {root}; `soulctl` removes it)\n"
            f"{check_value(when, 'the time')} {line}\n# END {name}\n")
