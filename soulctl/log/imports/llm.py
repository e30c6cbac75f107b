"""simonw/llm's `logs.db` (SQLite): `responses` (`id`, `model`, `prompt`, `response`,
`conversation_id`, `datetime_utc`) and `conversations` (`id`, `name`); each response is the
user's prompt and the model's reply. Read-only, with the standard library."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

from soulctl.errors import InvalidInput
from soulctl.log.imports import Said, importer, when


@importer("llm", "simonw/llm logs.db (SQLite): responses (id, model, prompt, response, "
                 "conversation_id, datetime_utc), conversations (id, name)")
def sniff(path: Path, head: bytes) -> bool:
    return head.startswith(b"SQLite format 3\x00")


def read(path: Path) -> Iterator[Said]:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        names = dict(db.execute("SELECT id, name FROM conversations").fetchall())
        rows = db.execute("SELECT id, model, prompt, response, conversation_id, datetime_utc FROM responses "
                          "ORDER BY datetime_utc, rowid")
    except sqlite3.Error as exc:
        raise InvalidInput(f"{path}: not an llm logs.db ({exc})", hint="point at llm's logs.db (llm logs path)") from None
    try:
        for rid, model, prompt, response, cid, stamp in rows:
            ts = when(stamp, f"{path}: response {rid}")
            cid = str(cid or rid)
            if prompt and prompt.strip():
                yield Said(f"{rid}:prompt", cid, "user", prompt, ts, title=names.get(cid))
            if response and response.strip():
                yield Said(f"{rid}:response", cid, "peer", response, ts, speaker=model, title=names.get(cid))
    except sqlite3.Error as exc:
        raise InvalidInput(f"{path}: the database broke while reading ({exc})") from None
    finally:
        db.close()
