"""The elements of a JSON array file one at a time, never the whole file in memory: each element
is decoded by the json module as soon as the buffer holds all of it (a ChatGPT or Claude export
is one array of conversations, each small; the array may be gigabytes)."""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import BinaryIO, Iterator

from soulctl.errors import InvalidInput

CHUNK = 1 << 20


def elements(path: Path, fh: BinaryIO | None = None) -> Iterator[tuple[int, object]]:
    """(character offset, element) of each element of the top-level array in `path` (or the
    open binary `fh`, e.g. a member of a zip). A truncated or malformed file raises
    InvalidInput naming the file and the character where it broke."""
    own = fh is None
    fh = fh or open(path, "rb")
    try:
        yield from _elements(path, fh)
    finally:
        if own:
            fh.close()


def _elements(path: Path, fh: BinaryIO) -> Iterator[tuple[int, object]]:
    decoder, text = json.JSONDecoder(), codecs.getincrementaldecoder("utf-8-sig")()
    buf, base, pos, eof = "", 0, 0, False  # base: the offset of buf[0] in the file's text

    def more() -> bool:
        nonlocal buf, eof
        if eof:
            return False
        raw = fh.read(CHUNK)
        try:
            buf += text.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{path}: invalid UTF-8 near byte {exc.start} of a read",
                               hint="export the file again; it is not UTF-8 text") from None
        eof = not raw
        return True

    def skip(chars: str) -> None:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in chars:
                pos += 1
            if pos < len(buf) or not more():
                return

    def broken(what: str) -> InvalidInput:
        return InvalidInput(f"{path}: {what} at character {base + pos}",
                            hint="the export is cut short or not this format: export it again, or name --format")

    more()
    skip(" \t\r\n")
    if pos >= len(buf) or buf[pos] != "[":
        raise broken("expected a JSON array")
    pos += 1
    first = True
    while True:
        skip(" \t\r\n")
        if pos >= len(buf):
            raise broken("the array ends without `]` (a truncated file)")
        if buf[pos] == "]":
            return
        if not first:
            if buf[pos] != ",":
                raise broken("expected `,` or `]`")
            pos += 1
            skip(" \t\r\n")
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                if not more():
                    raise broken(f"invalid JSON ({exc.msg})") from None
            except RecursionError:
                raise broken("JSON nested too deeply") from None
        yield base + pos, value
        first = False
        pos = end
        if pos > CHUNK:  # drop what is decoded: memory holds one element, not the file
            base += pos
            buf, pos = buf[pos:], 0
