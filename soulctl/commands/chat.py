"""soulctl chat: talk to the soul through the Memory OS."""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from soulctl.cli import options, state

HELP = """Talk to the soul through the Memory OS.

With MESSAGE, or with text piped on stdin, one turn: only the reply goes to stdout. On a
terminal without MESSAGE, a conversation (/help lists its commands): the prompt shows how full
the window is, a flush is announced while it runs, the corpora and log packets a reply drew on
are listed under it, and Ctrl-C stops a reply (logged partial) without leaving. Every turn,
reply, rewrite and flush is a packet in the log. Sampling flags override soul.yaml's
roles.soul.sampling for this session.
"""

SLASH = {
    "/help": "this list",
    "/notebook": "print the notebook",
    "/flush": "rewrite the notebook from the window (checked) and flush the window",
    "/self [GUIDANCE]": "the soul rewrites its self-definition (checked; refused if it repeats itself)",
    "/mount NAME…": "put on corpora",
    "/unmount [NAME]": "take a corpus off (all without a name)",
    "/resonate [SCORE]": "mark the last reply (default 1.0); a mark wins over computed scores",
    "/hands TASK": "give the coding agent a task and review its work",
    "/quit": "leave (also Ctrl-D)",
}


def run(
    message: Annotated[Optional[str], typer.Argument(help="One message (default: stdin, or a conversation on a terminal).")] = None,
    session: Annotated[Optional[str], typer.Option("--session", help="Resume this session (its window is rebuilt from the log).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse to serve a generation whose files fail verification (default: warn).")] = False,
    tool: Annotated[Optional[List[str]], typer.Option("--tool", help="A tool the soul must call first (repeat for more, in order); needs a model that calls tools.")] = None,
    temperature: Annotated[Optional[float], typer.Option(callback=options.sampling("temperature"), help="Sampling temperature (0: greedy).", rich_help_panel="Sampling")] = None,
    top_p: Annotated[Optional[float], typer.Option(callback=options.sampling("top_p"), help="Nucleus sampling: the smallest set of tokens with this much probability.", rich_help_panel="Sampling")] = None,
    top_k: Annotated[Optional[int], typer.Option(callback=options.sampling("top_k"), help="Sample among the k likeliest tokens (0: off).", rich_help_panel="Sampling")] = None,
    min_p: Annotated[Optional[float], typer.Option(callback=options.sampling("min_p"), help="Drop tokens below this share of the likeliest one's probability.", rich_help_panel="Sampling")] = None,
    repeat_penalty: Annotated[Optional[float], typer.Option(callback=options.sampling("repeat_penalty"), help="Penalty on tokens already written (1: none).", rich_help_panel="Sampling")] = None,
    seed: Annotated[Optional[int], typer.Option(callback=options.sampling("seed"), help="A fixed seed: the same reply to the same prompt.", rich_help_panel="Sampling")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(min=1, help="At most this many tokens per reply (within memory.reply_tokens).", rich_help_panel="Sampling")] = None,
) -> None:
    from soulctl.memory.session import open_session
    from soulctl.tools import Toolbox

    out = state.out
    with out.progress_bars() as progress:  # a first run on llama.cpp converts the generation
        chat = open_session(state.soul(), session, strict, out.warn, progress, tools=Toolbox())
    chat.sampling = chat.sampling.but(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                                      repeat_penalty=repeat_penalty, seed=seed).check(chat.engine.name)
    chat.max_reply = max_tokens or chat.max_reply
    if message is None and not sys.stdin.isatty():
        message = sys.stdin.read()
    if message is None:
        _repl(chat)
        return
    result = chat.turn(message.strip(), use_tools=tuple(tool or ()))
    if out.json:
        out.record({"reply": result.reply, "session": chat.session, "user_id": result.user_id,
                    "reply_id": result.reply_id, "prompt_tokens": result.prompt_tokens,
                    "flushed": result.flushed, "retrieved": result.retrieved}, id_key="reply_id")
    else:
        out.text(result.reply)


def _repl(chat) -> None:
    """A conversation on a terminal. A mistake — a slash command's bad argument, a message
    that cannot fit — prints its one line and the conversation goes on."""
    import readline  # noqa: F401  (line editing and history for input())

    from soulctl.errors import SoulError

    out = state.out
    chat.announce = out.info  # pressure and flushes, on stderr as they happen
    out.info(f"session {chat.session} — /help for commands, /quit to leave, Ctrl-C stops a reply")
    while True:
        try:
            line = input(f"[{chat.fill():.0%}] you> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.info("")
            return
        if not line:
            continue
        try:
            if line.startswith("/"):
                if _slash(line, chat):
                    return
                continue
            _reply(chat, line)
        except SoulError as exc:
            sys.stdout.flush()
            out.error(exc.message, exc.hint)


def _reply(chat, line: str) -> None:
    """One turn on the terminal: the reply as it is written, stopped by Ctrl-C (the partial
    reply is logged as such), then the sources it drew on."""
    from soulctl.interrupts import stoppable
    from soulctl.memory.stream import TurnCancelled

    with stoppable() as stop:
        def show(piece: str) -> None:
            if stop.is_set():
                raise TurnCancelled("interrupted")
            sys.stdout.write(piece)
            sys.stdout.flush()

        sys.stdout.write("soul> ")
        sys.stdout.flush()
        result = chat.turn(line, on_token=show)
    sys.stdout.write("\n")
    if result.partial:
        state.out.info("(stopped: the partial reply is logged)")
    for i, cite in enumerate(result.retrieved, 1):
        sys.stdout.write(f"  [{i}] {cite}\n")
    sys.stdout.flush()


def _tool(chat, tool_name: str, **arguments):
    """A tool from the registry; its error, as one line."""
    from soulctl.errors import InvalidInput
    from soulctl.tools import ToolContext, call

    outcome = call(tool_name, {k: v for k, v in arguments.items() if v is not None},
                   ToolContext(state.soul(), chat))
    if "error" in outcome:
        raise InvalidInput(outcome["error"])
    return outcome["result"]


def _slash(line: str, chat) -> bool:
    """One slash command; True to leave. Errors are SoulErrors, reported by the REPL."""
    from soulctl.errors import InvalidInput, UsageError
    from soulctl.memory import notebook as nb

    out = state.out
    cmd, _, arg = line.partition(" ")
    arg = arg.strip()
    if cmd in ("/quit", "/exit"):
        return True
    if cmd == "/help":
        width = max(map(len, SLASH))
        out.text("\n".join(f"{name.ljust(width)}  {what}" for name, what in SLASH.items()))
    elif cmd == "/notebook":
        out.text(nb.current(chat.soul, "notebook")["text"] or "(empty)")
    elif cmd == "/flush":
        if not chat.window:
            raise InvalidInput("the window is empty: nothing to flush", hint="talk first")
        chat.pressure()
    elif cmd == "/self":  # the soul's tools, from the one registry the chat loop and MCP use
        version = _tool(chat, "rewrite_self", guidance=arg or None)["version"]
        out.text(nb.current(chat.soul, "self")["text"])
        out.info(f"self-definition v{version}, written by the soul")
    elif cmd == "/hands":
        if not arg:
            raise UsageError("/hands needs a task", hint="/hands TASK")
        result = _tool(chat, "invoke_agent", task=arg)
        out.text(result["result"])
        out.info(f"the hands are done; logged as {result['result_id']}")
    elif cmd == "/mount":
        if not arg:
            raise UsageError("/mount needs a corpus name", hint="/mount NAME (see `soulctl mount ls`)")
        outfit = [_tool(chat, "mount_corpus", name=name)["mounted"] for name in arg.split()][-1]
        out.info("mounted: " + ", ".join(outfit))
    elif cmd == "/unmount":
        out.info("mounted: " + (", ".join(_tool(chat, "unmount_corpus", name=arg or None)["mounted"]) or "nothing"))
    elif cmd == "/resonate":
        last = next((t for t in reversed(chat.window) if t.role == "assistant"), None)
        if last is None:
            raise InvalidInput("no reply to mark yet", hint="talk first, then /resonate [SCORE]")
        try:
            score = float(arg) if arg else 1.0
        except ValueError:
            raise InvalidInput(f"/resonate takes a score in [0, 1], not {arg!r}", hint="/resonate 0.9") from None
        _tool(chat, "mark_resonance", id=last.packet_id, score=score)
        out.info(f"marked the last reply at {score}")
    else:
        raise UsageError(f"unknown command {cmd}", hint="/help lists the commands")
    return False
