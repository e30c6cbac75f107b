"""MCP's stdio wire for `soulctl mcp`: every line a client sends gets an answer.

The SDK's own stdio transport drops a line it cannot parse (invalid UTF-8, invalid JSON, a lone
surrogate escape), so the client waits forever; over HTTP the same request gets JSON-RPC's
-32700. Here each line is checked the way every other input is (jsontext: valid, not too deep,
text that is text, finite numbers) before the SDK sees it, and a bad one is answered -32700 with
the request's id when it has one. As the SDK does, fd 1 is taken for the wire and pointed at
stderr meanwhile (stray output never corrupts the protocol), and fd 0 at the null device.
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager

import anyio

from soulctl import jsontext

PARSE_ERROR = -32700
MAX_LINE = 16 << 20  # one JSON-RPC message; a longer line is answered, not buffered without end


class Wire:
    """The protocol's stdout: whole lines, one writer at a time."""

    def __init__(self, fd: int):
        self._file = anyio.wrap_file(open(fd, "w", encoding="utf-8", closefd=False))
        self._lock = anyio.Lock()

    async def write(self, text: str) -> None:
        async with self._lock:
            await self._file.write(text)
            await self._file.flush()

    async def flush(self) -> None:
        pass  # every write is flushed whole

    async def refuse(self, message: str, request_id=None) -> None:
        await self.write(json.dumps({"jsonrpc": "2.0", "id": request_id,
                                     "error": {"code": PARSE_ERROR, "message": message}}) + "\n")


class CheckedLines:
    """The client's lines, each one checked; a bad one answered on the wire and not passed on."""

    def __init__(self, fd: int, wire: Wire):
        self._file = open(fd, "rb", closefd=False)
        self._wire = wire

    async def _readline(self) -> bytes:
        return await anyio.to_thread.run_sync(self._file.readline, MAX_LINE + 1)

    def __aiter__(self):
        return self._lines()

    async def _lines(self):
        while raw := await self._readline():
            if len(raw) > MAX_LINE:
                await self._wire.refuse(f"a message over {MAX_LINE >> 20} MiB")
                while raw and not raw.endswith(b"\n"):  # the rest of that line, unread
                    raw = await self._readline()
                continue
            if not raw.strip():
                continue
            problem, request_id = _check(raw)
            if problem is None:
                yield raw.decode("utf-8")
            else:
                await self._wire.refuse(problem, request_id)


def _check(raw: bytes) -> tuple[str | None, object]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"Parse error: not UTF-8 (byte {exc.start})", None
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        return f"Parse error: {getattr(exc, 'msg', 'nested too deeply')}", None
    request_id = value.get("id") if isinstance(value, dict) else None
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        request_id = None
    try:
        jsontext.check(value, "the request")
    except jsontext.BadJSON as exc:
        return f"Parse error: {exc.message}", request_id
    return None, request_id


@asynccontextmanager
async def stdio_wire():
    """(stdin lines, stdout wire) for the SDK's stdio_server, with fds 0 and 1 taken meanwhile."""
    wire_in, wire_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # a stray print goes to stderr, never onto the protocol
    os.close(null)
    try:
        wire = Wire(wire_out)
        yield CheckedLines(wire_in, wire), wire
    finally:
        os.dup2(wire_in, 0)
        os.dup2(wire_out, 1)
        os.close(wire_in)
        os.close(wire_out)
