"""The JSON schemas a reply may be held to (`response_format`, `text.format`): checked before a
grammar is built from one, so a bad schema is the client's error (400) and a huge one cannot
hold the model's worker for minutes.

What is refused: a schema over MAX_BYTES, more than MAX_ENUM enum values in all, a `type` JSON
Schema does not have, a `$ref` that is not local or names nothing, a `$ref` that reaches itself
(a recursive schema: a grammar cannot hold it).
"""

from __future__ import annotations

import json

from soulctl.errors import InvalidInput

MAX_BYTES = 32 * 1024
MAX_ENUM = 1024
TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}


def check_json_schema(schema: dict, where: str = "the schema") -> dict:
    size = len(json.dumps(schema))
    if size > MAX_BYTES:
        raise InvalidInput(f"{where} is {size} bytes, over the limit of {MAX_BYTES}", hint="send a smaller schema")
    enums = [0]
    _walk(schema, schema, where, enums, ())
    return schema


def _walk(node, root: dict, where: str, enums: list[int], refs: tuple[str, ...]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, root, where, enums, refs)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    for name in kind if isinstance(kind, list) else [kind] if kind is not None else []:
        if name not in TYPES:
            raise InvalidInput(f"{where}: unknown type {str(name)[:40]!r}", hint=f"types: {', '.join(sorted(TYPES))}")
    if isinstance(node.get("enum"), list):
        enums[0] += len(node["enum"])
        if enums[0] > MAX_ENUM:
            raise InvalidInput(f"{where} has more than {MAX_ENUM} enum values", hint="send a smaller schema")
    if "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise InvalidInput(f"{where}: only local references (#/…) are supported, not {str(ref)[:60]!r}")
        if ref in refs:
            raise InvalidInput(f"{where}: {ref} refers to itself (a recursive schema cannot be a grammar)")
        _walk(_resolve(root, ref, where), root, where, enums, refs + (ref,))
    for key, value in node.items():
        if key not in ("$ref", "enum", "const", "default", "examples"):
            _walk(value, root, where, enums, refs)


def _resolve(root: dict, ref: str, where: str):
    node = root
    for part in ref.lstrip("#").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise InvalidInput(f"{where}: {ref} names nothing in the schema")
    return node
