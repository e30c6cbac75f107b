"""Conventions every command keeps: fast start, JSON output, stderr for errors, pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import BASE_ENV, soulctl

HEAVY = ("torch", "transformers", "sentence_transformers", "faiss", "mergekit", "peft", "mlx",
         "llama_cpp")


def heavy_modules_loaded(args: list[str], cwd=None) -> list[str]:
    code = ("import sys\nfrom soulctl.cli.main import hoist_global_flags, run\n"
            "code = run(hoist_global_flags(sys.argv[1:]))\n"
            f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
            "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
            "sys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=BASE_ENV, cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    line = [l for l in proc.stderr.splitlines() if l.startswith("HEAVY=")][-1]
    return [m for m in line[6:].split(",") if m]


def test_fast_commands_do_not_import_torch(gen0_home):
    assert heavy_modules_loaded(["--help"]) == []
    assert heavy_modules_loaded(["budget", "--model", "mistral-large-2407", "--ram", "1TiB"]) == []
    assert heavy_modules_loaded(["budget", "--home", gen0_home]) == []
    assert heavy_modules_loaded(["gen", "ls", "--home", gen0_home]) == []
    assert heavy_modules_loaded(["gen", "show", "--home", gen0_home]) == []
    assert heavy_modules_loaded(["log", "ls", "--home", gen0_home]) == []
    assert heavy_modules_loaded(["log", "sql", "SELECT count(*) FROM log", "--home", gen0_home]) == []


def test_every_json_output_parses(gen0_home):
    for args in (["gen", "ls"], ["gen", "show"], ["gen", "verify"], ["budget"],
                 ["log", "sql", "SELECT 1 AS one"],
                 ["budget", "--list-presets"], ["budget", "--model", "llama-3.1-8b", "--fit"]):
        r = soulctl(*args, "--json", "--home", gen0_home)
        assert r.code == 0, (args, r)
        lines = r.stdout.splitlines()
        assert lines, args
        for line in lines:
            json.loads(line)


def test_errors_go_to_stderr_only(tmp_path):
    r = soulctl("gen", "show", "--json", cwd=tmp_path)
    assert r.code == 3 and r.stdout == "" and r.stderr.startswith("error: ")


def test_usage_errors_exit_2():
    r = soulctl("budget", "--no-such-flag")
    assert r.code == 2 and "No such option" in r.stderr


def test_closed_stdout_is_quiet_and_exits_141():
    read_end, write_end = os.pipe()
    os.close(read_end)
    proc = subprocess.run([sys.executable, "-m", "soulctl", "budget", "--list-presets"],
                          stdout=write_end, stderr=subprocess.PIPE, text=True, env=BASE_ENV)
    os.close(write_end)
    assert proc.returncode == 141
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_version_and_help():
    assert soulctl("--version").stdout.startswith("soulctl ")
    help_text = soulctl("--help").stdout
    for command in ("init", "budget", "gen"):
        assert command in help_text
