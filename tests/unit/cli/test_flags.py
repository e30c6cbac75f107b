"""The command line's conventions: global flags anywhere, one exit-code table (README's)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from soulctl.cli.main import hoist_global_flags
from soulctl.errors import EXIT_CODES

REPO = Path(__file__).resolve().parents[3]

def test_global_flags_are_hoisted_before_the_command():
    from soulctl.cli.main import hoist_global_flags

    assert hoist_global_flags(["log", "ls", "--json", "-n", "3"]) == ["--json", "log", "ls", "-n", "3"]
    assert hoist_global_flags(["gen", "ls", "--home", "/h", "-q"]) == ["--home", "/h", "-q", "gen", "ls"]
    assert hoist_global_flags(["log", "add", "--home=/h", "x"]) == ["--home=/h", "log", "add", "x"]
    # after `--` nothing is a flag
    assert hoist_global_flags(["log", "add", "--", "--json"]) == ["log", "add", "--", "--json"]


@pytest.mark.parametrize("argv,expected", [
    (["budget", "--json"], ["--json", "budget"]),
    (["gen", "ls", "-q", "--home", "/x"], ["-q", "--home", "/x", "gen", "ls"]),
    (["gen", "show", "--home=/x", "3"], ["--home=/x", "gen", "show", "3"]),
    (["log", "add", "--", "--json"], ["log", "add", "--", "--json"]),
])
def test_global_flags_work_anywhere(argv, expected):
    assert hoist_global_flags(argv) == expected


@pytest.mark.parametrize("page", ["README.md", "docs/reference.md"])
def test_the_exit_code_tables_match_the_code(page):
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", (REPO / page).read_text(), re.M))
    assert {int(k): v.replace("\\|", "|") for k, v in table.items()} == EXIT_CODES
