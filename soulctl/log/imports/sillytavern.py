"""SillyTavern chats (`.jsonl`): a header line (`user_name`, `character_name`, `create_date`),
then one message a line (`name`, `is_user`, `is_system`, `send_date`, `mes`, `swipes`). A
message's other swipes are counted, not imported."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Iterator

from soulctl.log.imports import Said, importer, json_lines, when


@importer("sillytavern", "SillyTavern chat (.jsonl): a header (user_name, character_name, create_date), "
                         "then name, is_user, send_date, mes")
def sniff(path: Path, head: bytes) -> bool:
    first = head.split(b"\n", 1)[0]
    return b'"character_name"' in first or (b'"is_user"' in head and b'"mes"' in head)


def read(path: Path) -> Iterator[Said]:
    header: dict = {}
    for number, where, obj in json_lines(path, "the chat file is cut short or not SillyTavern's: export it again"):
        if number == 1 and "mes" not in obj:
            header = obj
            continue
        if obj.get("is_system") or not isinstance(obj.get("mes"), str) or not obj["mes"].strip():
            continue
        cid = f"{header.get('character_name') or path.stem}:{header.get('create_date') or path.stem}"
        notes = {"alternates_skipped": len(obj["swipes"]) - 1} if len(obj.get("swipes") or []) > 1 else {}
        role = "user" if obj.get("is_user") else "peer"
        yield Said(f"{cid}:{number}", cid, role, obj["mes"], _time(obj.get("send_date"), where),
                   speaker=obj.get("name"), title=header.get("character_name"), notes=notes)


def _time(value, where: str) -> _dt.datetime:
    """SillyTavern's send_date: ISO 8601, epoch milliseconds, or "March 14, 2024 10:22am"."""
    if isinstance(value, str):
        for fmt in ("%B %d, %Y %I:%M%p", "%B %d, %Y %I:%M %p"):
            try:
                return _dt.datetime.strptime(value.strip(), fmt).replace(tzinfo=_dt.timezone.utc)
            except ValueError:
                pass
    return when(value, where)
