"""The soul's hands: `soulctl hands` drives a coding agent through Claude Code's headless
interface. A stand-in `claude` on PATH (tests/func/standin/claude) behaves like the real one's
interface: it reads -p and the flags, honours --output-format json, prints the documented
result object and fails, hangs or prints garbage on request."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import refused, soulctl

STANDIN = Path(__file__).resolve().parents[1] / "standin"


def agent_env(mode: str = "ok", with_agent: bool = True) -> dict:
    path = os.environ.get("PATH", "")
    if not with_agent:  # a PATH on which no `claude` is found
        path = os.pathsep.join(p for p in path.split(os.pathsep) if not (Path(p) / "claude").exists())
    return {"PATH": (str(STANDIN) + os.pathsep + path) if with_agent else path, "STANDIN_CLAUDE": mode}


@pytest.fixture(autouse=True)
def standin_allowed(home):
    """The stand-in reads its mode from STANDIN_CLAUDE; the agent sees only what hands.env allows."""
    import yaml

    data = yaml.safe_load((home / "soul.yaml").read_text())
    data["hands"]["env"] = ["ANTHROPIC_*", "CLAUDE_CODE_*", "STANDIN_CLAUDE"]
    (home / "soul.yaml").write_text(yaml.safe_dump(data))


def hands_packets(home, session: str) -> list[dict]:
    rows = soulctl("log", "ls", "--session", session, "--role", "hands", "--reverse", "--json",
                   "--home", home).json_lines()
    return rows


def test_a_task_is_done_and_both_sides_are_logged(home, tmp_path):
    assert soulctl("notebook", "set", "--home", home, input="We write terse tools.\n").code == 0
    work = tmp_path / "work"
    work.mkdir()
    result = soulctl("hands", "Write HANDS.md", "--constraints", "be brief", "--cwd", work,
                     "--max-turns", "4", "--max-budget-usd", "0.5", "--allowed-tools", "Read Edit",
                     "--session", "h", "--json", "--home", home, env=agent_env("ok"))
    assert result.code == 0, result
    record = result.json()
    assert record["ok"] is True and record["num_turns"] == 4 and record["total_cost_usd"] == 0.0123
    assert record["result"] == f"Done: wrote HANDS.md for packet {record['request_id']} (384 floats)"
    handed = (work / "HANDS.md").read_text()
    assert "Task: Write HANDS.md" in handed and "Constraints: be brief" in handed
    assert "We write terse tools." in handed  # the soul's notebook goes with the task
    argv = json.loads((work / ".standin-argv.json").read_text())["argv"]
    assert argv[:3] == ["-p", "--output-format", "json"] and "--verbose" not in argv
    for flag, value in (("--max-turns", "4"), ("--max-budget-usd", "0.5"), ("--allowedTools", "Read Edit")):
        assert argv[argv.index(flag) + 1] == value
    request, reply = hands_packets(home, "h")
    assert (request["id"], reply["id"]) == (record["request_id"], record["result_id"])
    assert reply["parent"] == request["id"] and reply["prose"] == record["result"]
    assert request["meta"]["kind"] == "hands-request" and request["meta"]["cwd"] == str(work)
    assert reply["meta"]["kind"] == "hands-result" and reply["meta"]["session_id"].endswith("c1de")
    shown = soulctl("log", "show", reply["id"], "--json", "--home", home).json()
    assert len(shown["embedding"]) == 384  # embedded like every packet


@pytest.mark.parametrize("mode,words", [
    ("error", "API Error: 529 overloaded"),
    ("exit", "exit 2: Error: Invalid API key"),
    ("garbage", "output is not its JSON result"),
])
def test_a_failing_agent_is_exit_7_with_its_own_message(home, tmp_path, mode, words):
    refused(soulctl("hands", "Write HANDS.md", "--cwd", tmp_path, "--session", "f", "--home", home,
                    env=agent_env(mode)), 7, words)
    request, reply = hands_packets(home, "f")  # asked and answered, whole
    assert reply["parent"] == request["id"] and reply["meta"]["ok"] is False
    assert words.split(": ")[-1] in reply["meta"]["error"]
    assert not (tmp_path / "HANDS.md").exists()


def test_a_timeout_kills_the_agent_and_its_children(home, tmp_path):
    start = time.monotonic()
    refused(soulctl("hands", "Hang", "--cwd", tmp_path, "--timeout", "3", "--session", "t", "--home", home,
                    env=agent_env("sleep")), 7, "timed out after 3 s")
    assert time.monotonic() - start < 60
    child = int((tmp_path / ".standin-child").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.2)
    assert not _alive(child), "the agent's child process outlived the timeout"
    request, reply = hands_packets(home, "t")
    assert reply["meta"]["error"].startswith("timed out")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def test_a_missing_agent_is_exit_6_and_nothing_is_logged(home, tmp_path):
    refused(soulctl("hands", "Write HANDS.md", "--cwd", tmp_path, "--home", home,
                    env=agent_env(with_agent=False)), 6, "claude is not installed")
    assert soulctl("log", "ls", "-q", "--home", home).stdout == ""
    refused(soulctl("hands", "x", "--cwd", tmp_path / "nowhere", "--home", home, env=agent_env()), 3,
            "does not exist")


def test_the_real_claude_code_is_driven_through_its_interface(home, tmp_path):
    """The real CLI (npm @anthropic-ai/claude-code), with no account here: it runs, answers its
    result object, and that object says it is not logged in — exit 7 with its own words, both
    sides logged."""
    from conftest import npm_client

    claude = npm_client("claude")
    nobody = tmp_path / "nobody"  # a HOME without Claude Code's credentials
    nobody.mkdir()
    result = soulctl("hands", "Reply with the single word: ok", "--cwd", tmp_path, "--max-turns", "1",
                     "--timeout", "180", "--session", "real", "--home", home,
                     env={"PATH": f"{claude.parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(nobody),
                          "ANTHROPIC_API_KEY": ""})
    refused(result, 7, "Not logged in")
    request, reply = hands_packets(home, "real")
    assert reply["parent"] == request["id"] and reply["meta"]["ok"] is False
    assert reply["meta"]["session_id"] and reply["meta"]["terminal_reason"]  # its result object, parsed


def test_the_soul_reviews_its_hands(home, tmp_path):
    import yaml

    data = yaml.safe_load((home / "soul.yaml").read_text())
    data["memory"]["reply_tokens"] = 48
    (home / "soul.yaml").write_text(yaml.safe_dump(data))
    result = soulctl("hands", "Write HANDS.md", "--cwd", tmp_path, "--review", "--session", "r", "--json",
                     "--home", home, env=agent_env("ok"))
    assert result.code == 0, result
    record = result.json()
    assert record["verdict"].strip() and record["review_id"]
    rows = soulctl("log", "ls", "--session", "r", "--reverse", "--json", "--home", home).json_lines()
    assert [(r["role"], r["meta"]["kind"]) for r in rows] == [
        ("hands", "hands-request"), ("hands", "hands-result"), ("soul", "hands-review")]
    assert rows[2]["parent"] == record["result_id"] and rows[2]["prose"] == record["verdict"].strip()
    assert rows[2]["meta"]["prompt_tokens"] + 48 <= 8192
