"""The notebook and the self-definition: versioned text, every version kept with its author
and reason. The self-definition changes only through the soul's own rewrite or
`notebook set --self`; until then it is recipes/self.md."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from soulctl.errors import InvalidInput, NotFound
from soulctl.home import Home

if TYPE_CHECKING:
    from soulctl.soul import Soul

KINDS = ("notebook", "self")
AUTHORS = ("user", "soul", "majordomo")


def default_self(home: Home) -> str:
    from soulctl.home.recipes import recipe_file

    if (path := recipe_file(home, "self.md")) is not None:
        return path.read_text(encoding="utf-8").strip()
    return "You are the soul of this machine."


def current(soul: Soul, kind: str) -> dict:
    return current_all(soul)[kind]


def current_all(soul: Soul) -> dict[str, dict]:
    """The current self-definition and notebook, read together."""
    latest = soul.store.memory_latest(KINDS)
    for kind in KINDS:
        if kind not in latest:
            text = default_self(soul.home) if kind == "self" else ""
            latest[kind] = {"kind": kind, "version": 0, "ts": None, "author": "default",
                            "reason": "initial", "text": text}
    return latest


def write(soul: Soul, kind: str, text: str, author: str, reason: str | None,
          review: dict | None = None) -> int:
    if kind not in KINDS:
        raise InvalidInput(f"unknown memory {kind!r}")
    if author not in AUTHORS:
        raise InvalidInput(f"unknown author {author!r}", hint=f"authors: {', '.join(AUTHORS)}")
    return soul.store.memory_add(kind, text, author, reason, review)


def fit_sector(soul: Soul, kind: str, text: str, force: bool = False) -> tuple[str, str]:
    """A user's text for the notebook or self-definition, within its sector as the serving
    model counts it: refused when over, or with `force` trimmed (the note says so)."""
    from soulctl.memory.rewrite import trim_to_tokens

    limit = getattr(soul.config.memory, "self_tokens" if kind == "self" else "notebook_tokens")
    engine = soul.engine("soul")
    size = engine.count_tokens(text)
    if size <= limit:
        return text, ""
    name = "self-definition" if kind == "self" else "notebook"
    if not force:
        key = "self_tokens" if kind == "self" else "notebook_tokens"
        raise InvalidInput(f"the {name} is {size} tokens; its sector holds {limit} (memory.{key})",
                           hint="shorten it, raise memory." + key + " in soul.yaml, or pass --force to trim it")
    return trim_to_tokens(engine, text, limit), f"; trimmed from {size} to {limit} tokens (--force)"


def version(soul: Soul, kind: str, number: int) -> dict:
    if number == 0:  # what there was before the first write
        return {"kind": kind, "version": 0, "text": default_self(soul.home) if kind == "self" else "",
                "author": "default", "reason": "initial", "ts": None}
    for v in soul.store.memory_versions(kind):
        if v["version"] == number:
            return v
    raise NotFound(f"no {kind} version {number}", hint="see `soulctl notebook history`")


def diff(soul: Soul, kind: str, a: int | None, b: int | None) -> str:
    versions = soul.store.memory_versions(kind)
    last = versions[-1]["version"] if versions else 0
    b = last if b is None else b
    a = max(b - 1, 0) if a is None else a
    va, vb = version(soul, kind, a), version(soul, kind, b)
    lines = difflib.unified_diff(va["text"].splitlines(keepends=True), vb["text"].splitlines(keepends=True),
                                 fromfile=f"{kind} v{a}", tofile=f"{kind} v{b}")
    return "".join(lines)


def revert(soul: Soul, kind: str, number: int | None = None, reason: str | None = None) -> tuple[int, int]:
    """A new version holding version `number`'s text (default: the one before the latest), by
    the user: nothing is deleted, the reverted version stays in the history. Returns (new
    version, the version it restores)."""
    versions = soul.store.memory_versions(kind)
    if not versions:
        raise NotFound(f"the {kind} has no versions to revert", hint="see `soulctl notebook history`")
    latest = versions[-1]["version"]
    number = latest - 1 if number is None else number
    if number == latest:
        raise InvalidInput(f"{kind} v{number} is already the current version",
                           hint="name an older one (see `soulctl notebook history`)")
    if number < 0:
        raise NotFound(f"no {kind} version {number}", hint="see `soulctl notebook history`")
    old = version(soul, kind, number)
    why = f"reverted to v{number}" + (f" ({reason})" if reason else "")
    return write(soul, kind, old["text"], "user", why), number


def review_lines(record: dict) -> list[str]:
    """What a checked rewrite did, one line each, for `notebook diff` and `history`."""
    found = record.get("review") or {}
    if not found:
        return []
    lines = [f"kept {found.get('kept', 0)} line(s) of the previous version"]
    lines += [f"superseded: {s['line']}  →  {s['by']}" for s in found.get("superseded", [])]
    lines += [f"dropped by the writer, put back: {line}" for line in found.get("dropped", [])]
    lines += [f"evicted for room (a packet in the log): {line}" for line in found.get("evicted", [])]
    lines += [f"repeated, removed: {line}" for line in found.get("repeated", [])]
    lines += [f"refused, nothing said supports it: {line}" for line in found.get("unsupported", [])]
    lines += [f"captured, in the user's words: {line}" for line in found.get("captured", [])]
    if found.get("reasked"):
        lines.append("asked again: " + ", ".join(found["reasked"]))
    return lines
