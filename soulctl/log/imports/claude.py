"""Claude's data export: `conversations.json` — an array of conversations (`uuid`, `name`,
`chat_messages`: `uuid`, `sender` human/assistant, `text` or `content[].text`, `created_at`,
`attachments`, `files`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from soulctl.errors import InvalidInput
from soulctl.log.imports import Said, attached, importer, when
from soulctl.log.imports.jsonarray import elements

ROLES = {"human": "user", "assistant": "peer"}


@importer("claude", "Claude data export: conversations.json — uuid, name, chat_messages "
                    "(uuid, sender, text or content[].text, created_at, attachments, files)")
def sniff(path: Path, head: bytes) -> bool:
    return head.lstrip()[:1] == b"[" and b'"chat_messages"' in head


def read(path: Path) -> Iterator[Said]:
    for at, conv in elements(path):
        where = f"{path}: the conversation at character {at}"
        if not isinstance(conv, dict) or not isinstance(conv.get("chat_messages"), list):
            raise InvalidInput(f"{where} has no `chat_messages`", hint="is this a Claude export? name --format")
        cid = str(conv.get("uuid") or at)
        for n, message in enumerate(conv["chat_messages"]):
            if not isinstance(message, dict):
                continue
            role = ROLES.get(str(message.get("sender")))
            text = message.get("text") if isinstance(message.get("text"), str) else ""
            if not text.strip():
                text = "\n".join(c.get("text", "") for c in message.get("content") or []
                                 if isinstance(c, dict) and c.get("type") == "text" and isinstance(c.get("text"), str))
            text, notes = attached(text, [str(f.get("file_name") or "file") for key in ("attachments", "files")
                                          for f in message.get(key) or [] if isinstance(f, dict)])
            if role is None or not text.strip():
                continue
            yield Said(str(message.get("uuid") or f"{cid}:{n}"), cid, role, text,
                       when(message.get("created_at") or conv.get("created_at"), f"{where}, message {n}"),
                       speaker="Claude" if role == "peer" else None, title=conv.get("name"), notes=notes)
