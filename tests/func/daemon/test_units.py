"""Units the platform runs (systemd, launchd, crontab): every path escaped for its format or
refused, installs that leave nothing behind when the manager refuses, dry runs that work where
no manager runs, and token files checked before a service could crash-loop on them.

Each unit is read back by the format's own reader where this machine has one: `systemd-analyze
verify`, Python's plistlib, and /bin/sh under cron's `%` rule."""

from __future__ import annotations

import json
import os
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_home, refused, soulctl

# names a user's disk may hold, each meaningful to some format
ODD_NAMES = ["soul 100% $HOME %h", "it's \"quoted\" \\back", "semi;colon && `tick` $(x) *"]
INJECTIONS = ["a\n[Service]\nExecStartPre=/bin/touch /tmp/owned", "b\r* * * * * touch /tmp/owned", "c\td"]


def stand_in(bin_dir: Path, name: str, script: str) -> Path:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def no_manager(tmp_path: Path) -> dict:
    """A machine where systemctl exists but no user manager answers, and there is no crontab."""
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "systemctl", "echo 'Failed to connect to bus: No medium found' >&2\nexit 1\n")
    return {"PATH": str(bin_dir), "XDG_CONFIG_HOME": str(tmp_path / "config")}


def systemd_words(line: str) -> list[str]:
    """An Exec line's words as systemd reads them: double quotes, C escapes, `%%` and `$$`."""
    words, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        assert line[i] == '"', f"unquoted word at {line[i:]!r}"
        i += 1
        word = ""
        while line[i] != '"':
            if line[i] == "\\":
                word += {"\\": "\\", '"': '"'}[line[i + 1]]
                i += 2
            elif line[i] in "%$":
                assert line[i + 1] == line[i], f"a bare {line[i]} would be expanded: {line!r}"
                word += line[i]
                i += 2
            else:
                word += line[i]
                i += 1
        words.append(word)
        i += 1
    return words


def unit_sections(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("["):
            current = sections.setdefault(line, {})
            continue
        key, _, value = line.partition("=")
        assert key not in current, f"{key} twice: {text}"
        current[key] = value
    return sections


@pytest.mark.parametrize("name", ODD_NAMES)
def test_a_home_path_is_escaped_in_every_format(gen0_home, tmp_path, name):
    home = copy_home(gen0_home, tmp_path / name)
    root = str(home.resolve())
    # systemd: one [Service] section, the command exactly as written, specifiers not expanded
    for kind, args in (("service", ["service", "install", "--scheduler", "systemd"]),
                       ("schedule", ["schedule", "install", "--scheduler", "systemd"])):
        shown = soulctl("--home", home, "--json", *args, "--dry-run")
        assert shown.code == 0, shown
        record = shown.json()
        service_path = next(p for p in record["files"] if p.endswith(".service"))
        sections = unit_sections(record["files"][service_path])
        assert sorted(sections) == sorted(["[Unit]", "[Service]"] + (["[Install]"] if kind == "service" else []))
        assert systemd_words(sections["[Service]"]["ExecStart"]) == record["command"]
        assert sections["[Service]"]["WorkingDirectory"].replace("%%", "%") == root
        assert sections["[Service]"]["StandardOutput"].replace("%%", "%") == f"append:{record['log']}"
        if kind == "schedule":
            assert sections["[Service]"]["SuccessExitStatus"] == "10"  # a quiet night is not a failure
        unit = tmp_path / f"soulctl-check-{kind}.service"
        unit.write_text(record["files"][service_path])
        checked = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
    # launchd: the plist's own reader gives back the same argv and folder
    plist = soulctl("--home", home, "--json", "service", "install", "--scheduler", "launchd", "--dry-run").json()
    read = plistlib.loads(next(iter(plist["files"].values())).encode())
    assert read["ProgramArguments"] == plist["command"] and read["WorkingDirectory"] == root


@pytest.mark.parametrize("name", ODD_NAMES)
def test_a_crontab_line_runs_the_command_as_written(tmp_path, name):
    """cron's rule (a bare % ends the command) then /bin/sh: the argv arrives whole."""
    from soulctl.platform.unittext import cron_block

    root = tmp_path / name
    root.mkdir()
    log = root / "out % $HOME.log"
    command = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", name, "%h", "$HOME"]
    block = cron_block("soulctl-evolve-test", root, "0 3 * * *", command, str(log), "a test")
    lines = block.splitlines()
    assert len(lines) == 3 and lines[0].startswith("# BEGIN") and lines[2] == "# END soulctl-evolve-test"
    field = lines[1].split(" ", 5)[5]
    assert not re.search(r"(?<!\\)%", field), "a bare % would cut the command"
    ran = subprocess.run(["/bin/sh", "-c", field.replace("\\%", "%")], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(log.read_text()) == command[3:]


@pytest.mark.parametrize("name", INJECTIONS)
def test_a_control_character_in_a_path_is_refused_in_every_format(gen0_home, tmp_path, name):
    home = copy_home(gen0_home, tmp_path / name)
    for args in (["schedule", "install", "--scheduler", "systemd"], ["schedule", "install", "--scheduler", "cron"],
                 ["schedule", "install", "--scheduler", "launchd"], ["service", "install", "--scheduler", "systemd"],
                 ["service", "install", "--scheduler", "launchd"]):
        refused(soulctl("--home", home, *args, "--dry-run"), 5, "control character")
    assert not (home / "data" / "schedule.json").exists() and not (home / "data" / "service.json").exists()


@pytest.mark.parametrize("kind", ["service", "schedule"])
def test_a_refused_install_leaves_nothing_and_remove_cleans_an_older_ones_leftovers(home, tmp_path, kind):
    config = tmp_path / "config"
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "systemctl", "[ \"$2\" = daemon-reload ] && { echo 'Failed to connect to bus' >&2; exit 1; }\n"
                                   "exit 0\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "XDG_CONFIG_HOME": str(config)}
    result = soulctl("--home", home, kind, "install", "--scheduler", "systemd", env=env)
    refused(result, 7, "daemon-reload")
    units = config / "systemd" / "user"
    assert not any(units.glob("*")) if units.exists() else True
    assert not (home / "data" / f"{kind}.json").exists()
    # what an older soulctl left after such a failure: the files, no record
    shown = soulctl("--home", home, "--json", kind, "install", "--scheduler", "systemd", "--dry-run", env=env).json()
    for path, text in shown["files"].items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    removed = soulctl("--home", home, kind, "remove", env=env)
    assert removed.code == 0, removed
    assert not any(units.glob("*"))
    refused(soulctl("--home", home, kind, "remove", env=env), 3, f"no {kind} installed")


def test_dry_runs_show_the_unit_where_no_manager_runs(home, tmp_path):
    env = no_manager(tmp_path)
    shown = soulctl("--home", home, "service", "install", "--dry-run", env=env)
    assert shown.code == 0, shown
    assert "[Service]" in shown.stdout and "Restart=on-failure" in shown.stdout
    assert "no systemd user manager runs here" in shown.stderr and " serve --host 127.0.0.1 --port 8710" in shown.stderr
    as_json = soulctl("--home", home, "--json", "service", "install", "--dry-run", env=env).json()
    assert as_json["scheduler"] == "systemd" and "no systemd user manager" in as_json["unavailable"]
    # the real install says so, with the command to run under a supervisor of one's own
    failed = soulctl("--home", home, "service", "install", env=env)
    refused(failed, 7, "no systemd user manager runs here")
    assert " serve --host 127.0.0.1 --port 8710" in failed.stderr
    assert not (home / "data" / "service.json").exists()
    # the schedule falls back to cron; where there is no crontab either, a dry run says so
    cron = soulctl("--home", home, "--json", "schedule", "install", "--dry-run", env=env)
    assert cron.code == 0 and cron.json()["scheduler"] == "cron" and cron.json()["crontab"].startswith("# BEGIN")
    assert "no `crontab` command" in cron.stderr and " evolve" in cron.stderr
    refused(soulctl("--home", home, "schedule", "install", env=env), 7, "no `crontab` command")


def test_a_token_file_is_checked_before_a_service_is_installed(home, tmp_path):
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "systemctl", "exit 0\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    install = ["--home", home, "service", "install", "--scheduler", "systemd", "--host", "0.0.0.0", "--token-file"]
    refused(soulctl(*install, tmp_path / "missing", env=env), 3, "no token file")
    open_file = tmp_path / "open.token"
    open_file.write_text("a" * 32)
    open_file.chmod(0o644)
    refused(soulctl(*install, open_file, env=env), 5, "readable by others")
    short = tmp_path / "short.token"
    short.write_text("abc")
    short.chmod(0o600)
    refused(soulctl(*install, short, env=env), 5, "at least 16")
    fifo = tmp_path / "token.fifo"
    os.mkfifo(fifo, 0o600)
    refused(soulctl(*install, fifo, env=env, timeout=30), 5, "not a regular file")
    refused(soulctl("--home", home, "serve", "--port", "0", "--token-file", fifo, timeout=30), 5,
            "not a regular file")
    assert not (home / "data" / "service.json").exists()
    good = tmp_path / "good.token"
    good.write_text("b" * 32 + "\n")
    good.chmod(0o600)
    installed = soulctl(*install, good, env=env)
    assert installed.code == 0, installed
    assert shutil.which("systemctl", path=env["PATH"])
