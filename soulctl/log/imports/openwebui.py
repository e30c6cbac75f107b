"""Open WebUI's chat export: a JSON array of chats (`id`, `title`, `chat.messages`: `id`,
`role`, `content`, `timestamp`, `model`, `files`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from soulctl.errors import InvalidInput
from soulctl.log.imports import Said, attached, importer, when
from soulctl.log.imports.jsonarray import elements

ROLES = {"user": "user", "assistant": "peer", "system": "system"}


@importer("openwebui", "Open WebUI chat export: [{id, title, chat: {messages: [{id, role, content, "
                       "timestamp, model, files}]}}]")
def sniff(path: Path, head: bytes) -> bool:
    return head.lstrip()[:1] == b"[" and b'"chat"' in head and b'"messages"' in head


def read(path: Path) -> Iterator[Said]:
    for at, item in elements(path):
        where = f"{path}: the chat at character {at}"
        chat = item.get("chat") if isinstance(item, dict) else None
        if not isinstance(chat, dict) or not isinstance(chat.get("messages"), list):
            raise InvalidInput(f"{where} has no `chat.messages`", hint="is this an Open WebUI export? name --format")
        cid = str(item.get("id") or chat.get("id") or at)
        for n, message in enumerate(chat["messages"]):
            if not isinstance(message, dict):
                continue
            role = ROLES.get(str(message.get("role")))
            text = message.get("content") if isinstance(message.get("content"), str) else ""
            text, notes = attached(text, [str(f.get("name") or f.get("type") or "file")
                                          for f in message.get("files") or [] if isinstance(f, dict)])
            if role is None or not text.strip():
                continue
            yield Said(str(message.get("id") or f"{cid}:{n}"), cid, role, text,
                       when(message.get("timestamp") or item.get("created_at"), f"{where}, message {n}"),
                       speaker=message.get("model") if role == "peer" else None,
                       title=item.get("title") or chat.get("title"), notes=notes)
