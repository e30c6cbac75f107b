"""soulctl log import: the conversations a user already has, from other tools (log/imports/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soulctl.cli import state

app = typer.Typer()


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="The export: a file (a ChatGPT export may stay zipped).")],
    fmt: Annotated[Optional[str], typer.Option(
        "--format", "-f", help="chatgpt, claude, llm, openwebui, sillytavern or jsonl (default: from the file).")] = None,
    as_user: Annotated[Optional[str], typer.Option(
        "--as-user", help="The user's name, as the speaker of their turns.")] = None,
    since: Annotated[Optional[str], typer.Option(
        help="Only turns from this time on (ISO date or age: 2025-01-01, 90d).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read and count; write nothing.")] = False,
) -> None:
    """Import conversations from another tool: each turn a packet with its real time, the
    user's turns `user`, the other assistant's `peer` (never the soul's own), the conversation
    as the session (`chatgpt:<id>` …), the source's message id in `meta.source`.

    The whole file is read and checked before anything is written: a truncated or malformed
    file names the file and where it broke (exit 5), and the log is unchanged. Importing the
    same export again adds nothing; an import killed half-way resumes on the next run.
    Imported turns are searched like any other; they are never captured into the notebook
    and never go into a training buffer.

    Examples:

    \b
      soulctl log import ~/Downloads/chatgpt-export.zip --as-user Lena
      soulctl log import conversations.json --format claude --dry-run
      soulctl log import ~/.config/io.datasette.llm/logs.db --since 90d
    """
    from soulctl.log.imports.run import import_file, pick
    from soulctl.log.ingest import parse_time
    from soulctl.processes import Interrupts

    out = state.out
    soul = state.soul()
    fmt = pick(source, fmt)
    after = parse_time(since, "--since") if since else None
    with out.progress_bars() as progress, Interrupts() as interrupts:
        summary = import_file(soul.store, soul.embedder, source, fmt, as_user, after, dry_run, progress,
                              between=interrupts.check)
    out.record(summary, id_key="file", human=_human)


def _human(s: dict) -> str:
    did = "would import" if s["dry_run"] else "imported"
    line = (f"{did} {s['imported']} turns of {s['conversations']} conversations from {s['file']} ({s['format']}); "
            f"{s['present']} already in the log")
    for key, words in (("before_since", "before --since"), ("alternates_skipped", "alternate branches skipped"),
                       ("attachments", "attachments noted")):
        if s[key]:
            line += f", {s[key]} {words}"
    return line
