"""A turn streamed as server-sent events, for every dialect (chat completions, responses).

The turn runs on the engine worker; its pieces cross to the event loop through a queue. The
first piece is awaited before the response starts, so a refused turn is an HTTP error, not
a broken stream. Whatever ends the response — done, the client gone, the server stopping —
sets `cancel`: the engine stops at its next token and the partial reply is logged as such.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Callable, Iterable, Protocol

from starlette.responses import StreamingResponse

from soulctl.memory.stream import TurnCancelled
from soulctl.serve.errors import failure
from soulctl.serve.slot import Busy, Slot

_DONE = object()


class Events(Protocol):
    """A dialect's server-sent events around one turn, each already framed (`sse`)."""

    def opening(self) -> Iterable[str]: ...

    def piece(self, text: str) -> Iterable[str]: ...

    def closing(self, result) -> Iterable[str]: ...

    def failed(self, error: dict) -> Iterable[str]: ...


def sse(payload, event: str | None = None) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return (f"event: {event}\n" if event else "") + f"data: {data}\n\n"


class TurnStream(StreamingResponse):
    """The streamed response of one turn; whatever ends it sets `cancel`."""

    def __init__(self, events, cancel: threading.Event, headers: dict):
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self.cancel = cancel

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.cancel.set()


async def stream_turn(slot: Slot, turn: Callable, headers: dict, events: Events):
    """Run `turn(on_token)` on the engine and stream it in `events`' dialect."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()

    def on_token(piece: str) -> None:
        if cancel.is_set():
            raise TurnCancelled("the client disconnected")
        loop.call_soon_threadsafe(pieces.put_nowait, piece)

    def job():
        if cancel.is_set():  # its client left while it waited in the queue
            return None
        return turn(on_token)

    try:
        future = slot.submit(job)
    except Busy as exc:
        return _with(failure(exc), headers)
    future.add_done_callback(lambda _f: loop.call_soon_threadsafe(pieces.put_nowait, _DONE))
    try:
        first = await pieces.get()
    except asyncio.CancelledError:
        cancel.set()
        raise
    if first is _DONE and future.exception() is not None:
        return _with(failure(future.exception()), headers)

    async def body():
        for line in events.opening():
            yield line
        item = first
        while item is not _DONE:
            for line in events.piece(item):
                yield line
            item = await pieces.get()
        if (exc := future.exception()) is not None:  # after the reply began: an error event, then the end
            for line in events.failed(json.loads(failure(exc).body)):
                yield line
        elif (result := future.result()) is not None:
            for line in events.closing(result):
                yield line

    return TurnStream(body(), cancel, {**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _with(response, headers: dict):
    response.headers.update(headers)
    return response
