"""soulctl chat: talk to the soul through the Memory OS."""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from soulctl.cli import state

HELP = """Talk to the soul through the Memory OS.

With MESSAGE, or with text piped on stdin, one turn: only the reply goes to stdout. On a
terminal without MESSAGE, a conversation: /mount NAME, /unmount, /notebook, /flush,
/self [GUIDANCE] (the soul rewrites its self-definition), /resonate [SCORE], /quit. Every turn,
reply, rewrite and flush is a packet in the log.
"""


def run(
    message: Annotated[Optional[str], typer.Argument(help="One message (default: stdin, or a conversation on a terminal).")] = None,
    session: Annotated[Optional[str], typer.Option("--session", help="Resume this session (its window is rebuilt from the log).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse to serve a generation whose files fail verification (default: warn).")] = False,
    tool: Annotated[Optional[List[str]], typer.Option("--tool", help="A tool the soul must call first (repeat for more, in order); needs a model that calls tools.")] = None,
) -> None:
    out = state.out
    with out.progress_bars() as progress:  # a first run on llama.cpp converts the generation
        chat = state.soul().session(session, strict, out.warn, progress)
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
    out.info(f"session {chat.session} — /quit to leave, /notebook, /flush, /self [GUIDANCE], /mount NAME, "
             "/unmount, /resonate [SCORE], /hands TASK")
    while True:
        try:
            line = input("you> ").strip()
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
            sys.stdout.write("soul> ")
            chat.turn(line, on_token=lambda piece: (sys.stdout.write(piece), sys.stdout.flush()))
            sys.stdout.write("\n")
        except SoulError as exc:
            sys.stdout.flush()
            out.error(exc.message, exc.hint)


def _tool(chat, tool_name: str, **arguments):
    """A tool from the registry; its error, as one line."""
    from soulctl.errors import InvalidInput
    from soulctl.memory.tools import ToolContext, call

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
    if cmd == "/notebook":
        out.text(nb.current(chat.soul, "notebook")["text"] or "(empty)")
    elif cmd == "/flush":
        if chat.window:
            out.info(f"notebook v{chat.pressure()} written; window flushed")
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
        raise UsageError(f"unknown command {cmd}", hint="/quit, /notebook, /flush, /self, /mount, /unmount, /resonate, /hands")
    return False
