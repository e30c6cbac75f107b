"""ChatGPT's data export: `conversations.json` (or the export's zip holding it) — an array of
conversations, each a `mapping` of nodes (`message.author.role`, `message.content.parts`,
`message.create_time`, `parent`, `children`). The conversation is the branch that ends at
`current_node`; the other branches (edits, regenerations) are counted, not imported."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterator

from soulctl.errors import InvalidInput
from soulctl.log.imports import Said, importer, when
from soulctl.log.imports.jsonarray import elements

ROLES = {"user": "user", "assistant": "peer", "system": "system", "tool": "tool"}


@importer("chatgpt", "ChatGPT data export: conversations.json or the export's zip — mapping, "
                     "current_node, message.author.role, message.content.parts, message.create_time")
def sniff(path: Path, head: bytes) -> bool:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return "conversations.json" in {Path(n).name for n in z.namelist()}
    return head.lstrip()[:1] == b"[" and b'"mapping"' in head


def read(path: Path) -> Iterator[Said]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if Path(n).name == "conversations.json")
            with z.open(name) as fh:
                yield from _conversations(path, elements(path, fh))
    else:
        yield from _conversations(path, elements(path))


def _conversations(path: Path, items) -> Iterator[Said]:
    for at, conv in items:
        where = f"{path}: the conversation at character {at}"
        if not isinstance(conv, dict) or not isinstance(conv.get("mapping"), dict):
            raise InvalidInput(f"{where} has no `mapping`", hint="is this a ChatGPT export? name --format")
        mapping = conv["mapping"]
        cid = str(conv.get("conversation_id") or conv.get("id") or at)
        branch = _branch(mapping, conv.get("current_node"))
        on_branch = set(branch)
        alternates = sum(1 for key, node in mapping.items()
                         if key not in on_branch and isinstance(node, dict) and node.get("message"))
        first = True
        for key in branch:
            message = (mapping.get(key) or {}).get("message")
            if not isinstance(message, dict):
                continue
            role = ROLES.get(((message.get("author") or {}).get("role")) or "")
            text, notes = _text(message.get("content") or {})
            if role is None or not text.strip():
                continue
            if first and alternates:
                notes["alternates_skipped"] = alternates
            first = False
            stamp = message.get("create_time") or conv.get("create_time")
            yield Said(str(message.get("id") or key), cid, role, text,
                       when(stamp, f"{where}, message {key}"),
                       speaker="ChatGPT" if role == "peer" else None, title=conv.get("title"), notes=notes)


def _branch(mapping: dict, current) -> list[str]:
    """The node ids from the root down to `current_node` (else the last leaf)."""
    if current not in mapping:
        leaves = [k for k, n in mapping.items() if isinstance(n, dict) and not n.get("children")]
        current = leaves[-1] if leaves else None
    path, seen = [], set()
    while current is not None and current in mapping and current not in seen:
        seen.add(current)
        path.append(current)
        current = (mapping[current] or {}).get("parent")
    return path[::-1]


def _text(content: dict) -> tuple[str, dict]:
    parts, notes = [], {}
    for part in content.get("parts") or []:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict):  # an image or a file: noted
            kind = str(part.get("content_type") or "attachment")
            notes.setdefault("attachments", []).append(kind)
            if isinstance(part.get("text"), str):
                parts.append(part["text"])
    if not parts and isinstance(content.get("text"), str):
        parts.append(content["text"])
    text = "\n".join(p for p in parts if p)
    if not text.strip() and notes.get("attachments"):
        text = "[" + ", ".join(notes["attachments"]) + "]"
    return text, notes
