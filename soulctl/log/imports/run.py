"""An import run: the whole file read and checked first (a bad file changes nothing), then its
turns written in batches of whole packets, each batch skipping what the log already holds —
so a second import adds nothing and a run killed half-way resumes on the next."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Callable

from soulctl.errors import InvalidInput, NotFound
from soulctl.log.imports import Format, Said, detect, formats, packet_id
from soulctl.log.packets import NewPacket
from soulctl.log.store import Store
from soulctl.progress import progress_task

BATCH = 512  # turns checked against the log and written at once (ingest.WRITE_BATCH)


def pick(path: Path, name: str | None) -> Format:
    if not path.is_file():
        raise NotFound(f"{path}: no such file", hint="give the export file (a ChatGPT export may be its zip)")
    if name is None:
        return detect(path)
    known = formats()
    if name not in known:
        raise InvalidInput(f"unknown import format {name!r}", hint=f"formats: {', '.join(sorted(known))}")
    return known[name]


def packet_of(fmt: Format, said: Said, as_user: str | None) -> NewPacket:
    speaker = as_user if said.role == "user" and as_user else said.speaker
    source = {"format": fmt.name, "id": said.source_id, "conversation": said.conversation}
    if said.title:
        source["title"] = said.title
    meta = {"source": source, **({"speaker": speaker} if speaker else {}), **said.notes}
    return NewPacket(id=packet_id(fmt.name, said.source_id), prose=said.text, role=said.role,
                     session=f"{fmt.name}:{said.conversation}", ts=said.ts, meta=meta)


def import_file(store: Store, embedder, path: Path, fmt: Format, as_user: str | None = None,
                since: _dt.datetime | None = None, dry_run: bool = False, progress=None,
                between: Callable[[], None] | None = None) -> dict:
    """Import `path` (its format `fmt`); returns the summary: conversations, turns, imported,
    already present, before --since, attachments noted, alternates skipped."""
    from soulctl.log.ingest import add_packets, check_embedder, check_prose

    summary = {"file": str(path), "format": fmt.name, "conversations": 0, "turns": 0, "imported": 0,
               "present": 0, "before_since": 0, "attachments": 0, "alternates_skipped": 0, "dry_run": dry_run}
    conversations: set[str] = set()
    total = 0
    with progress_task(progress, f"Reading {path.name}") as task:  # the whole file, checked, before a write
        for said in fmt.read(path):
            check_prose(said.text, f"{path}: message {said.source_id}")
            total += 1
            task.advance(1)
    if not dry_run:
        check_embedder(store, embedder)
    batch: list[NewPacket] = []
    user = as_user.strip() if as_user and as_user.strip() else None

    def flush():
        present = store.existing_ids([p.id for p in batch])
        new = [p for p in batch if p.id not in present]
        summary["present"] += len(batch) - len(new)
        summary["imported"] += len(new)
        if new and not dry_run:
            list(add_packets(store, embedder, new, between=between))
        task.advance(len(batch))
        batch.clear()

    with progress_task(progress, "Importing turns", total) as task, store.bulk():
        for said in fmt.read(path):
            summary["turns"] += 1
            conversations.add(said.conversation)
            summary["attachments"] += len(said.notes.get("attachments", []))
            summary["alternates_skipped"] += int(said.notes.get("alternates_skipped", 0))
            if since is not None and said.ts < since:
                summary["before_since"] += 1
                task.advance(1)
                continue
            batch.append(packet_of(fmt, said, user))
            if len(batch) >= BATCH:
                flush()
        if batch:
            flush()
    summary["conversations"] = len(conversations)
    return summary
