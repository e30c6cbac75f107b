"""`log import`: the conversations a user already has, from other tools, into the log.

Each format is one module of this package registered under its name with `@importer(name)`:
`sniff(path, head)` says whether a file is its kind, `read(path, since)` yields `Said` turns in
the file's order, streaming (a multi-GB export is never loaded whole). The import gives each
turn a packet whose id is derived from the format and the source's own message id (so a second
import of the same export adds nothing, and a run cut short resumes where it stopped), its real
time, its role — the user's turns `user`, the other assistant's `peer` (never `soul`: the soul
does not learn another model's replies as its own) — the speaker, the conversation as the
session (prefixed by the format), and `meta.source` naming where it came from.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import pkgutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from soulctl.errors import InvalidInput

NAMESPACE = uuid.UUID("9b5d3c1e-7a0f-4b7e-9a52-3f1c2d4e5a60")  # the ids of imported packets


@dataclass
class Said:
    """One turn of an imported conversation, as its source had it."""

    source_id: str  # the source's own message id (unique within the format)
    conversation: str  # the source's conversation id
    role: str  # user | peer | system
    text: str
    ts: _dt.datetime
    speaker: str | None = None
    title: str | None = None  # the conversation's title, if the source has one
    notes: dict = field(default_factory=dict)  # attachments, images, alternates: noted, never dropped silently


@dataclass
class Format:
    name: str
    sniff: Callable[[Path, bytes], bool]
    read: Callable[[Path], Iterator[Said]]
    describe: str  # what it reads, for the documentation and --help


_FORMATS: dict[str, tuple[str, str, Callable]] = {}  # name -> (module, describe, sniff)


def importer(name: str, describe: str):
    """Register the decorated `sniff(path, head)` and its module's `read(path)` under `name`
    (the word `--format` takes)."""
    def register(sniff):
        _FORMATS[name] = (sniff.__module__, describe, sniff)
        return sniff
    return register


def formats() -> dict[str, Format]:
    """Every registered format, this package's modules imported once."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return {name: Format(name, sniff, importlib.import_module(module).read, describe)
            for name, (module, describe, sniff) in _FORMATS.items()}


def detect(path: Path) -> Format:
    """The format of `path` from its name and first bytes."""
    known = formats()
    with open(path, "rb") as fh:
        head = fh.read(65536)
    for fmt in known.values():
        if fmt.sniff(path, head):
            return fmt
    raise InvalidInput(f"{path}: not a conversation export soulctl knows",
                       hint=f"name its format: --format {{{','.join(sorted(known))}}}")


def packet_id(fmt: str, source_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{fmt}:{source_id}"))


def when(value, where: str) -> _dt.datetime:
    """A source's time — epoch seconds (or milliseconds), or ISO 8601 — in UTC."""
    if isinstance(value, bool) or value is None or value == "":
        raise InvalidInput(f"{where}: no time", hint="each message needs its time")
    if isinstance(value, (int, float)):
        seconds = float(value) / 1000 if float(value) > 1e11 else float(value)
        return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc)
    text = str(value).strip().replace("Z", "+00:00")
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            return when(float(text), where)
        except ValueError:
            raise InvalidInput(f"{where}: time {value!r} is not ISO 8601 or epoch seconds") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)


def json_lines(path: Path, hint: str) -> Iterator[tuple[int, str, dict]]:
    """(line number, where, object) of each non-blank line of a JSON-lines file, read a line at
    a time; a line that is not one JSON object names itself."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            where = f"{path}: line {number}"
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InvalidInput(f"{where}: invalid JSON ({getattr(exc, 'msg', exc)})", hint=hint) from None
            if not isinstance(obj, dict):
                raise InvalidInput(f"{where}: expected a JSON object", hint=hint)
            yield number, where, obj


def attached(text: str, files: list[str]) -> tuple[str, dict]:
    """A message's text and notes given the files attached to it: noted by name, and named in
    place of an empty text (an attachment alone is still a turn)."""
    if not files:
        return text, {}
    return (text if text.strip() else "[" + ", ".join(files) + "]"), {"attachments": files}
