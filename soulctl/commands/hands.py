"""soulctl hands: the soul's coding agent does a task, and the log keeps what was asked and done."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soulctl.cli import state

HELP = """Hand a task to the soul's coding agent (Claude Code, headless, by default).

Runs soul.yaml's hands.command (default `claude -p --output-format json`) in --cwd with the
limits given, handing it the task, the constraints, the soul's notebook and the request as a
bifocal packet (prose + embedding, in a file the agent is pointed at). The request and the
agent's result are logged as linked `hands` packets. Exit 6 when the agent is not installed,
7 when it fails, times out (its processes are killed) or prints something other than its
result object. With --review the soul reads the result and gives its verdict, logged too.

  soulctl hands "Add a --dry-run flag to scripts/sync.py" --cwd ~/src/tools --max-turns 8
"""


def run(
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    constraints: Annotated[Optional[str], typer.Option(help="How: constraints the agent must keep.")] = None,
    cwd: Annotated[Optional[Path], typer.Option(help="The working directory (default: here).")] = None,
    max_turns: Annotated[Optional[int], typer.Option(help="The agent's turn limit.", min=1)] = None,
    max_budget_usd: Annotated[Optional[float], typer.Option(help="The agent's spending limit.", min=0)] = None,
    timeout: Annotated[Optional[float], typer.Option(help="Seconds before the agent is killed (default: hands.timeout_s).", min=1)] = None,
    allowed_tools: Annotated[Optional[str], typer.Option(help="Tools the agent may use, e.g. 'Read Edit Bash(git:*)'.")] = None,
    session: Annotated[Optional[str], typer.Option("--session", help="Log in this session (default: $SOUL_SESSION or a new one).")] = None,
    review: Annotated[bool, typer.Option("--review", help="The soul then reviews the result; its verdict is logged.")] = False,
) -> None:
    from soulctl.hands import invoke_agent
    from soulctl.hands import review as run_review

    soul = state.soul()
    result = invoke_agent(soul, task, constraints, cwd, max_turns, max_budget_usd, timeout, allowed_tools, session)
    record = result.as_dict()
    if review:
        with state.out.progress_bars() as progress:
            soul.engine("soul", progress)  # a first run on llama.cpp converts the generation
        record.update(run_review(soul, result, task))
    state.out.record(record, id_key="result_id", human=lambda d: d["result"] + (
        f"\n\nreview: {d['verdict']}" if "verdict" in d else ""))
    state.out.hint(f"logged as {result.request_id} → {result.result_id} (session {result.session})")
