"""Plain JSON lines, as `log add --jsonl` reads them (`prose` or `text`, `role`, `session`,
`ts`, `id`, `meta.speaker`): any other tool's export, converted with jq."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Iterator

from soulctl.errors import InvalidInput
from soulctl.log.imports import Said, importer, json_lines, when
from soulctl.log.packets import ROLES


@importer("jsonl", "JSON lines: prose or text, role, session, ts, id, meta.speaker (as log add --jsonl)")
def sniff(path: Path, head: bytes) -> bool:
    first = head.lstrip().split(b"\n", 1)[0]
    return first[:1] == b"{" and (b'"prose"' in first or b'"text"' in first)


def read(path: Path) -> Iterator[Said]:
    for number, where, obj in json_lines(path, "each line must be one JSON object"):
        text = obj.get("prose", obj.get("text"))
        if not isinstance(text, str):
            raise InvalidInput(f"{where}: needs a string `prose` (or `text`)")
        role = str(obj.get("role") or "user")
        if role not in ROLES:
            raise InvalidInput(f"{where}: unknown role {role!r}", hint=f"roles: {', '.join(ROLES)}")
        if not text.strip():
            continue
        ts = when(obj["ts"], where) if obj.get("ts") else _dt.datetime.fromtimestamp(path.stat().st_mtime,
                                                                                  _dt.timezone.utc)
        meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
        yield Said(str(obj.get("id") or f"{path.name}:{number}"), str(obj.get("session") or path.stem),
                   role, text, ts, speaker=meta.get("speaker"))
