"""soulctl chat: talk to the soul through the Memory OS."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Annotated, Iterator, Optional

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
) -> None:
    out = state.out
    home = state.home()
    with open_session(home, session, strict) as chat:
        if message is None and not sys.stdin.isatty():
            message = sys.stdin.read()
        if message is None:
            _repl(chat, home, chat.store)
            return
        result = chat.turn(message.strip())
        if out.json:
            out.record({"reply": result.reply, "session": chat.session, "user_id": result.user_id,
                        "reply_id": result.reply_id, "prompt_tokens": result.prompt_tokens,
                        "flushed": result.flushed, "retrieved": result.retrieved}, id_key="reply_id")
        else:
            out.text(result.reply)


@contextmanager
def open_session(home, session: str | None, strict: bool = False) -> Iterator:
    """A ChatSession on the soul (and the majordomo, if soul.yaml names one) for `session`
    (default: $SOUL_SESSION or a new one); settled and its engines closed on the way out.
    The generation served is verified first (cheaply when unchanged): a tampered one is
    refused with `strict`, served with a warning otherwise."""
    from soulctl.engine import open_engine, served_generation
    from soulctl.errors import CheckFailed
    from soulctl.generations import verify_cached
    from soulctl.embed import embedder_for
    from soulctl.memory.session import ChatSession
    from soulctl.store import open_store
    from soulctl.store.base import env_session, new_session_id

    engines: list = []  # closed explicitly: a llama.cpp model freed at interpreter exit aborts
    try:
        with state.out.progress_bars() as progress:  # a first run on llama.cpp converts the generation
            if (gid := served_generation(home, "soul")) is not None:
                check = verify_cached(home, gid, progress)
                if not check.ok:
                    message = f"{gid} fails verification ({check.problems()})"
                    if strict:
                        raise CheckFailed(message + "; refusing to serve it",
                                          hint=f"restore it: soulctl gen materialize {gid}")
                    state.out.warn(message + f"; serving it anyway (restore it: soulctl gen materialize {gid})")
            engines.append(open_engine(home, "soul", progress=progress))
            keeper, keeper_role = engines[0], "soul"
            if "majordomo" in home.config.roles:
                engines.append(open_engine(home, "majordomo", progress=progress))
                keeper, keeper_role = engines[1], "majordomo"
        chat = ChatSession(home, engines[0], embedder_for(home.config, home.root), open_store(home),
                           session or env_session() or new_session_id(), keeper, keeper_role)
        try:
            yield chat
        finally:
            chat.settle()  # the reply is out; its packets finish indexing before the process ends
    finally:
        for engine in engines:
            engine.close()


def _repl(chat, home, store) -> None:
    import readline  # noqa: F401  (line editing and history for input())

    out = state.out
    out.info(f"session {chat.session} — /quit to leave, /notebook, /flush, /self [GUIDANCE], /mount NAME, "
             "/unmount, /resonate [SCORE]")
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.info("")
            return
        if not line:
            continue
        if line.startswith("/"):
            if _slash(line, chat, home, store):
                return
            continue
        sys.stdout.write("soul> ")
        chat.turn(line, on_token=lambda piece: (sys.stdout.write(piece), sys.stdout.flush()))
        sys.stdout.write("\n")


def _slash(line: str, chat, home, store) -> bool:
    from soulctl.corpus import mounts
    from soulctl.memory import notebook as nb

    out = state.out
    cmd, _, arg = line.partition(" ")
    if cmd in ("/quit", "/exit"):
        return True
    if cmd == "/notebook":
        out.text(nb.current(store, home, "notebook")["text"] or "(empty)")
    elif cmd == "/flush":
        if chat.window:
            out.info(f"notebook v{chat.pressure()} written; window flushed")
    elif cmd == "/self":
        version = chat.rewrite_self(arg or None)
        out.text(nb.current(store, home, "self")["text"])
        out.info(f"self-definition v{version}, written by the soul")
    elif cmd == "/mount" and arg:
        out.info("mounted: " + ", ".join(mounts.use(home, arg.split(), add_to=True)))
    elif cmd == "/unmount":
        out.info("mounted: " + (", ".join(mounts.off(home, arg or None)) or "nothing"))
    elif cmd == "/resonate":
        last = next((t for t in reversed(chat.window) if t.role == "assistant"), None)
        if last is None:
            out.warn("no reply to mark yet")
        else:
            score = float(arg) if arg else 1.0
            store.mark(last.packet_id, score, "mark")
            out.info(f"marked the last reply at {score}")
    else:
        out.warn(f"unknown command {cmd}")
    return False
