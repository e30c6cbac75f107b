"""Sizes as people write them: 512GiB, 24G, 1.5TB, 8192 (bytes)."""

from __future__ import annotations

import re

from soulctl.errors import InvalidInput

_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1000, "kib": 1024,
    "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1024**4, "tb": 1000**4, "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int | float, what: str = "size") -> int:
    """Bytes from '512GiB' / '24G' (binary) / '1.5TB' (decimal) / a plain number of bytes."""
    if isinstance(text, (int, float)):
        return int(text)
    match = _SIZE.match(str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise InvalidInput(f"bad {what} {text!r}", hint="write it like 512GiB, 24G, 1.5TB or 8192")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def human_size(n: float | None) -> str:
    """Bytes for people: 512 B, 1.5 KiB, 245.0 GiB."""
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
