"""The soul's hands: a coding agent (Claude Code, headless, by default) that does the work
the soul directs, and whose result the soul reviews (DESIGN §7).

invoke_agent runs soul.yaml's `hands.command` (default `claude -p --output-format json`) in a
working directory with limits, hands it the task, the constraints, the soul's notebook and
the soul's own packet (prose and embedding, in a file the agent is pointed at), parses the
agent's result object and logs the request and the result as linked `hands` packets.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from soulctl.errors import InvalidInput, MissingDependency, NotFound, Unavailable
from soulctl.log.ingest import current_generation
from soulctl.log.packets import NewPacket, env_session, new_id, new_session_id

if TYPE_CHECKING:
    from soulctl.soul import Soul

log = logging.getLogger(__name__)

INSTALL_HINT = "install Claude Code (npm install -g @anthropic-ai/claude-code), or set hands.command in soul.yaml"
KILL_GRACE_S = 5  # after a timeout: SIGTERM to the agent's process group, then SIGKILL
RESULT_KEYS = ("type", "subtype", "is_error", "result", "session_id", "num_turns", "duration_ms",
               "total_cost_usd", "terminal_reason", "permission_denials", "usage")


class AgentFailed(Unavailable):
    """The agent ran and failed: a non-zero exit, `is_error`, a timeout or output that is not its
    result object (exit 7, with the agent's own message)."""


@dataclass
class HandsResult:
    ok: bool
    result: str
    request_id: str
    result_id: str
    session: str
    agent: dict = field(default_factory=dict)  # the agent's result object, as documented keys
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"ok": self.ok, "result": self.result, "request_id": self.request_id,
                "result_id": self.result_id, "session": self.session, "seconds": round(self.seconds, 3),
                **{k: self.agent.get(k) for k in RESULT_KEYS if k in self.agent}}


def agent_command(config) -> list[str]:
    """The configured command with its executable found on PATH (exit 6 when it is not)."""
    command = list(config.hands.command)
    if not command:
        raise InvalidInput("hands.command in soul.yaml is empty", hint=INSTALL_HINT)
    exe = shutil.which(command[0])
    if exe is None:
        missing = MissingDependency(command[0], why="the soul's hands (the coding agent) run it")
        missing.hint = INSTALL_HINT
        raise missing
    return [exe, *command[1:]]


def invoke_agent(soul: Soul, task: str, constraints: str | None = None, cwd: str | Path | None = None,
                 max_turns: int | None = None, max_budget_usd: float | None = None,
                 timeout: float | None = None, allowed_tools: str | None = None,
                 session: str | None = None) -> HandsResult:
    """Run the coding agent on `task`; log the request and its result as linked packets."""
    if not task.strip():
        raise InvalidInput("the task is empty", hint='soulctl hands "what to do"')
    workdir = Path(cwd or os.getcwd()).expanduser().resolve()
    if not workdir.is_dir():
        raise NotFound(f"working directory {workdir} does not exist", hint="pass --cwd DIR")
    argv = agent_command(soul.config)
    timeout = timeout or soul.config.hands.timeout_s
    session = session or env_session() or new_session_id()
    from soulctl.memory import notebook as nb

    memory = nb.current_all(soul)
    request = NewPacket(prose=_request_prose(task, constraints), role="hands", session=session, id=new_id(),
                        generation=current_generation(soul.home),
                        meta={"kind": "hands-request", "task": task, "constraints": constraints,
                              "cwd": str(workdir), "max_turns": max_turns, "max_budget_usd": max_budget_usd,
                              "timeout_s": timeout, "allowed_tools": allowed_tools,
                              "command": [Path(argv[0]).name, *argv[1:]]})
    vector = soul.embedder.encode([request.prose])[0]
    with tempfile.TemporaryDirectory(prefix="soulctl-hands-") as handoff:
        packet_file = Path(handoff) / "soul-packet.json"
        packet_file.write_text(json.dumps({"id": request.id, "session": session, "prose": request.prose,
                                           "embedding": [float(x) for x in vector],
                                           "embed_model": soul.embedder.model_id,
                                           "notebook": memory["notebook"]["text"]}, ensure_ascii=False))
        prompt = _prompt(task, constraints, memory["notebook"]["text"], packet_file)
        # `--add-dir` takes many values in Claude Code (commander's variadic option): `--` ends
        # the options, so the prompt is never read as a second directory
        args = [*argv, *_limits(max_turns, max_budget_usd, allowed_tools), "--add-dir", handoff, "--", prompt]
        written = soul.store.add([request], vector[None, :], soul.embedder.model_id)
        start = time.monotonic()
        interrupted = None
        try:
            agent, failure = _run(args, workdir, timeout, agent_env(soul.config))
        except KeyboardInterrupt as exc:  # the agent is killed; its request still gets a result
            agent, failure, interrupted = {}, "interrupted", exc
        seconds = time.monotonic() - start
    ok = failure is None
    text = str(agent.get("result") or failure or "")
    result = NewPacket(prose=text or "(no result)", role="hands", session=session, parent=written[0].id,
                       generation=request.generation,
                       meta={"kind": "hands-result", "ok": ok, "seconds": round(seconds, 3),
                             **({"error": failure} if failure else {}),
                             **{k: agent[k] for k in RESULT_KEYS if k in agent and k != "result"}})
    stored = soul.store.add([result], soul.embedder.encode([result.prose]), soul.embedder.model_id)
    outcome = HandsResult(ok, text, written[0].id, stored[0].id, session, agent, seconds)
    if interrupted is not None:
        raise interrupted
    if not ok:
        raise AgentFailed(f"the coding agent failed: {failure}",
                          hint=f"its request and result are logged (soulctl log show {stored[0].id[:13]})")
    return outcome


REVIEW_PROMPT = ("Your hands (a coding agent) finished the task you gave them.\n\nTask: {task}\n\n"
                 "Their result:\n{result}\n\nReview it: is it done as you asked, within your "
                 "constraints? Answer with a verdict (done / not done) and one or two sentences why.")


def review(soul: Soul, outcome: HandsResult, task: str) -> dict:
    """The soul reviews its hands' result: the result goes back to it as a turn (within its
    context, the result cut to fit), and its verdict is logged as a `soul` packet whose
    parent is the result."""
    from soulctl.memory import notebook as nb
    from soulctl.memory.rewrite import trim_to_tokens

    engine, mem = soul.engine("soul"), soul.config.memory
    memory = nb.current_all(soul)
    system = {"role": "system", "content": memory["self"]["text"] + "\n\n# Notebook\n" + (memory["notebook"]["text"] or "(empty)")}
    ask = REVIEW_PROMPT.format(task=task.strip(), result="{result}")
    room = engine.context_length - mem.reply_tokens - engine.count_chat_tokens(
        [system, {"role": "user", "content": ask}])
    if room < 16:
        raise InvalidInput("the soul's context has no room to review its hands' result",
                           hint="shorten the self-definition or notebook, or serve a larger context")
    shown = outcome.result if engine.count_tokens(outcome.result) <= room else \
        trim_to_tokens(engine, outcome.result, room) + " …"
    messages = [system, {"role": "user", "content": ask.replace("{result}", shown)}]
    verdict = engine.chat(messages, mem.reply_tokens)
    packet = NewPacket(prose=verdict or "(no verdict)", role="soul", session=outcome.session,
                       parent=outcome.result_id, generation=current_generation(soul.home),
                       meta={"kind": "hands-review", "request": outcome.request_id,
                             "prompt_tokens": engine.count_chat_tokens(messages), "backend": engine.name})
    written = soul.store.add([packet], soul.embedder.encode([packet.prose]), soul.embedder.model_id)
    return {"verdict": verdict, "review_id": written[0].id}


# What every agent may see: where programs are, who and where it is, its language and terminal.
BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TERM",
            "COLORTERM", "NO_COLOR", "TZ", "TMPDIR")


def agent_env(config, environ=None) -> dict[str, str]:
    """The agent's environment: BASE_ENV and the names soul.yaml's `hands.env` allows, never
    soulctl's own secrets (HANDS_NEVER) — not the whole environment soulctl runs in."""
    from fnmatch import fnmatchcase

    from soulctl.home.config import HANDS_NEVER

    environ = os.environ if environ is None else environ
    allowed = (*BASE_ENV, *config.hands.env)
    return {name: value for name, value in environ.items()
            if any(fnmatchcase(name, p) for p in allowed)
            and not any(fnmatchcase(name, never) for never in HANDS_NEVER)}


def _run(args: list[str], cwd: Path, timeout: float, env: dict[str, str]) -> tuple[dict, str | None]:
    """The agent's result object and, when it failed, why in one line. Nothing is left running:
    the agent gets its own process group, killed whole on a timeout or an interrupt."""
    from soulctl.processes import user_umask

    try:
        proc = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, env=env,
                                umask=user_umask())
    except OSError as exc:
        raise AgentFailed(f"cannot start the coding agent: {exc.strerror}", hint=INSTALL_HINT) from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return {}, f"timed out after {timeout:g} s (the agent's processes were killed)"
    except BaseException:
        _kill_group(proc)
        raise
    agent = _parse(stdout)
    last_err = next((ln.strip() for ln in reversed(stderr.decode("utf-8", "replace").splitlines())
                     if ln.strip()), "")
    if agent is None:
        shown = stdout.decode("utf-8", "replace").strip().splitlines()[:1]
        why = last_err or (f"output is not its JSON result: {shown[0][:120]!r}" if shown else "no output")
        return {}, (f"exit {proc.returncode}: {why}" if proc.returncode else why)
    if proc.returncode != 0 or agent.get("is_error"):
        message = str(agent.get("result") or last_err or agent.get("subtype") or "error")
        return agent, f"exit {proc.returncode}: {message}" if proc.returncode else message
    return agent, None


def _parse(stdout: bytes) -> dict | None:
    """The result object `--output-format json` prints (an array under --verbose: its last
    `result` element)."""
    try:
        data = json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, list):
        data = next((d for d in reversed(data) if isinstance(d, dict) and d.get("type") == "result"), None)
    return data if isinstance(data, dict) and ("result" in data or "is_error" in data) else None


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=KILL_GRACE_S)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        proc.communicate(timeout=KILL_GRACE_S)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        pass


def _limits(max_turns, max_budget_usd, allowed_tools) -> list[str]:
    out = []
    if max_turns is not None:
        out += ["--max-turns", str(int(max_turns))]
    if max_budget_usd is not None:
        out += ["--max-budget-usd", f"{float(max_budget_usd):g}"]
    if allowed_tools:
        out += ["--allowedTools", allowed_tools]
    return out


def _request_prose(task: str, constraints: str | None) -> str:
    return f"Task for the hands: {task.strip()}" + (f"\nConstraints: {constraints.strip()}" if constraints else "")


def _prompt(task: str, constraints: str | None, notebook: str, packet_file: Path) -> str:
    parts = [f"Task: {task.strip()}"]
    if constraints:
        parts.append(f"Constraints: {constraints.strip()}")
    if notebook.strip():
        parts.append(f"The notebook of the one who asks (their current aims and decisions):\n{notebook.strip()}")
    parts.append(f"Their request as a bifocal packet (prose and embedding) is in {packet_file}.")
    return "\n\n".join(parts)
