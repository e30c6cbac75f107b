"""soulctl notebook: the agent-written notebook and, with --self, the self-definition."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from soulctl.cli import state
from soulctl.cli.output import Column

app = typer.Typer(help="The notebook (and, with --self, the self-definition): show, edit, set, rewrite, "
                       "history, diff, revert.",
                  no_args_is_help=True)
SelfOpt = Annotated[bool, typer.Option("--self", help="The self-definition instead of the notebook.")]


def _kind(self_: bool) -> str:
    return "self" if self_ else "notebook"


ForceOpt = Annotated[bool, typer.Option("--force", help="Trim a text over its sector (recorded in the reason) instead of refusing it.")]


def _write_by_user(kind: str, text: str, reason: str, force: bool) -> None:
    from soulctl.memory import notebook as nb

    soul = state.soul()
    text, note = nb.fit_sector(soul, kind, text, force)
    version = nb.write(soul, kind, text, "user", reason + note)
    state.out.record({"kind": kind, "version": version}, id_key="version",
                     human=lambda d: f"{d['kind']} v{d['version']}")


@app.command("show")
def show(self_: SelfOpt = False) -> None:
    """Print the current version."""
    from soulctl.memory import notebook as nb

    state.out.record(nb.current(state.soul(), _kind(self_)), id_key="version", human=lambda d: d["text"])


@app.command("set")
def set_(
    self_: SelfOpt = False,
    reason: Annotated[Optional[str], typer.Option(help="Why (kept with the version).")] = None,
    force: ForceOpt = False,
) -> None:
    """Write a new version from stdin (author: user); refused when over its sector."""
    from soulctl.errors import InvalidInput

    kind = _kind(self_)
    if sys.stdin.isatty():
        raise InvalidInput("nothing piped on stdin", hint="echo 'text' | soulctl notebook set")
    try:
        text = sys.stdin.buffer.read().decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"stdin is not UTF-8 (byte {exc.start})") from None
    _write_by_user(kind, text, reason or "set by user", force)


@app.command("edit")
def edit(
    self_: SelfOpt = False,
    reason: Annotated[Optional[str], typer.Option(help="Why (kept with the version).")] = None,
    force: ForceOpt = False,
) -> None:
    """Edit in $EDITOR; a new version only if the text changed (refused when over its sector)."""
    import os
    import subprocess
    import tempfile

    from soulctl.errors import InvalidInput
    from soulctl.memory import notebook as nb

    kind = _kind(self_)
    if not state.out.interactive:
        raise InvalidInput("notebook edit needs a terminal", hint="pipe the text to `soulctl notebook set`")
    old = nb.current(state.soul(), kind)["text"]
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as fh:
        fh.write(old)
    try:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        if subprocess.call([*editor.split(), fh.name]) != 0:
            raise InvalidInput(f"{editor} exited with an error; nothing changed")
        new = open(fh.name, encoding="utf-8").read().strip()
    finally:
        os.unlink(fh.name)
    if new == old.strip():
        state.out.hint("unchanged")
        return
    _write_by_user(kind, new, reason or "edited by user", force)


@app.command("rewrite")
def rewrite(
    self_: SelfOpt = False,
    session: Annotated[Optional[str], typer.Option(
        "--session", help="The session whose window the soul reads (default: $SOUL_SESSION).")] = None,
    guidance: Annotated[Optional[str], typer.Option(
        help="What the soul should keep in mind while it rewrites itself (--self).")] = None,
) -> None:
    """The soul rewrites: with --self its self-definition (its own rewrite tool, the recent
    window as context); without, the notebook from the session's window, which is then flushed
    (the pressure protocol, by hand). The size is enforced; the new text goes to stdout."""
    from soulctl.errors import InvalidInput
    from soulctl.log.packets import env_session
    from soulctl.memory import notebook as nb

    if guidance and not self_:
        raise InvalidInput("--guidance goes with --self", hint="soulctl notebook rewrite --self --guidance '…'")
    if not self_ and not (session or env_session()):
        raise InvalidInput("the notebook is rewritten from a session's window: name one",
                           hint="soulctl notebook rewrite --session NAME (see `soulctl log ls`)")
    with state.out.progress_bars() as progress:
        from soulctl.memory.session import open_session

        chat = open_session(state.soul(), session, warn=state.out.warn, progress=progress)
    if self_:
        version = chat.rewrite_self(guidance)
    elif not chat.window:
        raise InvalidInput(f"session {chat.session} has no turns since its last flush: "
                           "nothing to rewrite the notebook from", hint="talk first: soulctl chat --session NAME")
    else:
        version = chat.pressure("rewritten by hand (notebook rewrite); window flushed")
    kind = "self" if self_ else "notebook"
    record = {**nb.version(chat.soul, kind, version), "session": chat.session}
    state.out.record(record, id_key="version", human=lambda d: d["text"])
    state.out.info(f"{kind} v{version}, written by {record['author']}: {record['reason']}")


@app.command("history")
def history(self_: SelfOpt = False) -> None:
    """Every version, newest first, with author and reason."""
    kind = _kind(self_)
    rows = [{**v, "chars": len(v["text"])} for v in reversed(state.soul().store.memory_versions(kind))]
    state.out.rows(rows, [Column("version", align="right"), Column("ts"), Column("author"),
                          Column("chars", align="right"), Column("reason")],
                   id_key="version", empty=f"no {kind} versions yet")


@app.command("diff")
def diff(
    a: Annotated[Optional[int], typer.Argument(help="From version (default: the one before B).")] = None,
    b: Annotated[Optional[int], typer.Argument(help="To version (default: the latest).")] = None,
    self_: SelfOpt = False,
) -> None:
    """Unified diff between two versions."""
    from soulctl.memory import notebook as nb

    kind = _kind(self_)
    soul = state.soul()
    text = nb.diff(soul, kind, a, b)
    versions = soul.store.memory_versions(kind)
    b = b if b is not None else (versions[-1]["version"] if versions else 0)
    record = nb.version(soul, kind, b)
    review = nb.review_lines(record)

    def human(d: dict) -> str:
        notes = [f"# v{b} by {record['author']}: {record['reason']}", *(f"# {line}" for line in review)]
        return "\n".join([d["diff"].rstrip("\n"), *notes]).strip("\n")

    state.out.record({"kind": kind, "diff": text, "version": b, "reason": record["reason"],
                      "review": record.get("review")}, id_key=None, human=human)


@app.command("revert")
def revert(
    version: Annotated[Optional[int], typer.Argument(help="The version to restore (default: the one before the latest).")] = None,
    self_: SelfOpt = False,
    reason: Annotated[Optional[str], typer.Option(help="Why (kept with the new version).")] = None,
) -> None:
    """Restore an earlier version as a new one (author: user); the history keeps everything."""
    from soulctl.memory import notebook as nb

    kind = _kind(self_)
    new, old = nb.revert(state.soul(), kind, version, reason)
    state.out.record({"kind": kind, "version": new, "restores": old}, id_key="version",
                     human=lambda d: f"{kind} v{new} restores v{old}")
