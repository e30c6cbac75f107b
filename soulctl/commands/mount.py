"""soulctl mount: corpus indexes the soul puts on and takes off like outfits."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from soulctl.cli import options, state
from soulctl.cli.output import Column, human_bytes

app = typer.Typer(help="Corpora: index repos and mount them as the soul's reference shelf.",
                  no_args_is_help=True)


def _report(r) -> dict:
    return {"name": r.name, "source": r.source, "files": r.files, "chunks": r.chunks,
            "skipped": r.skipped, "skipped_files": r.skipped_files, "read": len(r.read),
            "read_files": r.read, "added": r.added, "changed": r.changed, "deleted": r.deleted,
            "unchanged": r.unchanged}


def _human_report(verb: str):
    def render(d: dict) -> str:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(d["skipped"].items())) or "none"
        line = (f"{verb} corpus {d['name']}: {d['files']} files, {d['chunks']} chunks "
                f"(read {d['read']}: {d['added']} added, {d['changed']} changed, "
                f"{d['deleted']} deleted, {d['unchanged']} unchanged); skipped: {skipped}")
        details = [f"  skipped {s['reason']:10s} {s['rel']}" for s in d["skipped_files"]]
        return "\n".join([line, *details])
    return render


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The corpus name (letters, digits, . _ -).")],
    path: Annotated[str, typer.Argument(help="A directory or git repository.")],
    max_file_size: Annotated[str, typer.Option(help="Skip files larger than this.")] = "2MB",
) -> None:
    """Index a directory: text, Markdown, reST, code, notebooks' cells; honours .gitignore.

    Binaries, oversized, unreadable and non-UTF-8 files and symlinks are skipped and reported.
    Chunks follow structure (headings, functions, paragraphs) with overlap; each keeps its
    path, line range and heading. Writes corpora/NAME/ (FAISS + BM25 + manifest).
    """
    from soulctl.corpus import mounts
    from soulctl.units import parse_size

    soul = state.soul()
    mounts.check_name(name)
    limit = parse_size(max_file_size, "--max-file-size")
    with state.out.progress_bars() as progress:
        report = mounts.add(soul.home, name, path, soul.embedder, progress, max_bytes=limit)
    state.out.record(_report(report), human=_human_report("indexed"), id_key="name")
    state.out.hint(f"mount it: soulctl mount use {name}")


@app.command("refresh")
def refresh(
    name: Annotated[str, typer.Argument(help="The corpus to bring up to date.")],
    full: Annotated[bool, typer.Option("--full", help="Re-read every file (after a chunker or embedder change).")] = False,
    max_file_size: Annotated[str, typer.Option(help="Skip files larger than this.")] = "2MB",
) -> None:
    """Re-read only files that changed, drop chunks of deleted files, index new ones."""
    from soulctl.corpus import mounts
    from soulctl.units import parse_size

    soul = state.soul()
    with state.out.progress_bars() as progress:
        report = mounts.refresh(soul.home, name, soul.embedder, progress, full=full,
                                max_bytes=parse_size(max_file_size, "--max-file-size"))
    state.out.record(_report(report), human=_human_report("refreshed"), id_key="name")


@app.command("ls")
def ls() -> None:
    """List corpora: source, files, chunks, size on disk, mounted or not."""
    from soulctl.corpus import mounts

    home = state.home()
    rows = (mounts.info(home, name) for name in mounts.names(home))
    state.out.rows(rows, [
        Column("name"), Column("mounted", fmt=lambda v: "*" if v else ""),
        Column("files", align="right"), Column("chunks", align="right"),
        Column("bytes", "size", fmt=human_bytes, align="right"), Column("source"),
    ], id_key="name", empty="no corpora yet: soulctl mount add NAME PATH")


@app.command("use")
def use(
    names: Annotated[List[str], typer.Argument(help="Corpora to wear (replaces the outfit).")],
    add_to: Annotated[bool, typer.Option("--add", help="Add to the current outfit instead.")] = False,
) -> None:
    """Mount corpora: the soul's searches and retrieved sector draw on them."""
    from soulctl.corpus import mounts

    outfit = mounts.use(state.home(), names, add_to=add_to)
    state.out.record({"mounted": outfit}, human=lambda d: "mounted: " + ", ".join(d["mounted"]),
                     id_key=None)


@app.command("off")
def off(
    name: Annotated[Optional[str], typer.Argument(help="One corpus; default: all of them.")] = None,
) -> None:
    """Take a corpus (or the whole outfit) off."""
    from soulctl.corpus import mounts

    outfit = mounts.off(state.home(), name)
    state.out.record({"mounted": outfit}, id_key=None,
                     human=lambda d: "mounted: " + (", ".join(d["mounted"]) or "nothing"))


@app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="The corpus to delete (its index, not its source).")],
    yes: options.Yes = False,
) -> None:
    """Delete a corpus index (the source directory is untouched)."""
    from soulctl.corpus import mounts
    from soulctl.errors import UsageError

    home = state.home()
    mounts.existing(home, name)
    if not yes:
        if not state.out.interactive:
            raise UsageError(f"refusing to delete corpus {name!r} without --yes",
                             hint=f"soulctl mount rm {name} --yes")
        if not typer.confirm(f"Delete the index of corpus {name!r}?", default=False, err=True):
            raise typer.Exit(1)
    mounts.remove(home, name)
    state.out.record({"removed": name}, human=lambda d: f"removed corpus {d['removed']}", id_key="removed")


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    corpus: Annotated[Optional[List[str]], typer.Option("--corpus", "-c", help="Search these corpora (default: the mounted ones).")] = None,
    k: options.K = 10, semantic: options.Semantic = False, keyword: options.Keyword = False,
) -> None:
    """Hybrid search (vectors + BM25, reciprocal rank fusion) over mounted corpora.

    Hits cite path:start-end and show the snippet and score.
    """
    from soulctl.corpus import mounts

    mode = options.search_mode(semantic, keyword)
    soul = state.soul()
    hits = mounts.Wardrobe(soul.home).search(query, soul.embedder, k, corpus, mode)
    out = state.out

    out.rows(({"rank": i, **h.as_dict()} for i, h in enumerate(hits, 1)), [
        Column("rank", align="right"), Column("score", fmt=lambda v: f"{v:.4f}", align="right"),
        Column("corpus"), Column("cite"), Column("heading", fmt=lambda v: options.snippet(v, 40)),
        Column("text", "snippet", fmt=lambda t: options.snippet(t, 70)),
    ], id_key="cite", empty="no hits")
