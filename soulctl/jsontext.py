"""JSON from outside (stdin lines, request bodies, tool arguments) checked the same way
everywhere: valid, not nested past MAX_DEPTH, text that is text and numbers that are finite
(`NaN`, `Infinity` and 1e999 are not JSON numbers a sender means; Python would take them).

JSON's `\\ud800` escapes decode to lone UTF-16 surrogates, which Python holds but no UTF-8
store can: they are refused — naming where they are — on every path, never replaced.
"""

from __future__ import annotations

import json
import math

from soulctl.errors import InvalidInput

MAX_DEPTH = 100  # objects and arrays inside each other; more is refused, not recursed into


class BadJSON(InvalidInput):
    """Input JSON refused; `param` names where (a field path), when there is a where."""

    def __init__(self, message: str, param: str | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.param = param


def loads(data: bytes | str, where: str = "the input"):
    """Parse and check: invalid JSON, nesting past MAX_DEPTH and lone surrogates are BadJSON."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise BadJSON(f"{where} is nested more than {MAX_DEPTH} deep") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadJSON(f"{where} is not valid JSON ({getattr(exc, 'msg', exc)})") from None
    check(value, where)
    return value


def check(value, where: str = "the input") -> None:
    """Nesting within MAX_DEPTH and no lone surrogate anywhere (keys included)."""
    stack = [(value, "", 1)]  # depth: the containers an item is, or is inside of
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH and isinstance(item, (dict, list)):
            raise BadJSON(f"{where} is nested more than {MAX_DEPTH} deep", path or None)
        if isinstance(item, str):
            if not _is_text(item):
                raise BadJSON(f"{where}: {f'`{path}`' if path else 'the text'} holds a lone UTF-16 "
                              "surrogate, which is not text", path or None,
                              hint="send UTF-8 text (escapes \\ud800-\\udfff must come in valid pairs)")
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadJSON(f"{where}: {f'`{path}`' if path else 'a number'} is not a finite number "
                          "(NaN, Infinity or out of range)", path or None)
        elif isinstance(item, dict):
            for key, inner in item.items():
                inner_path = f"{path}.{key}" if path else str(key)
                if not _is_text(str(key)):
                    raise BadJSON(f"{where}: a key holds a lone UTF-16 surrogate", path or None)
                stack.append((inner, inner_path, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, f"{path}[{i}]", depth + 1) for i, inner in enumerate(item))


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
