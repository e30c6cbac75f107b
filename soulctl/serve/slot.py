"""The engine slot: an in-process model serves one request at a time.

Work that runs the model (a turn, a rewrite) goes to one worker thread in arrival order; at
most `limit` requests wait or run, the next is refused as busy with a Retry-After estimated
from recent turns. Memory work that does not need the model (embeddings, search, the other
tools) has a worker of its own, so a search is not stuck behind a long reply.
"""

from __future__ import annotations

import asyncio
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from time import monotonic
from typing import Any, Callable


class Busy(Exception):
    """The queue is full (429), or the server is stopping (503)."""

    def __init__(self, message: str, retry_after: int, status: int = 429):
        super().__init__(message)
        self.retry_after, self.status = retry_after, status


class Slot:
    def __init__(self, limit: int):
        self.limit = limit  # requests that may wait while one runs
        self._engine = ThreadPoolExecutor(1, thread_name_prefix="soulctl-engine")
        self._memory = ThreadPoolExecutor(1, thread_name_prefix="soulctl-memory")
        self._lock = threading.Lock()
        self.waiting = 0  # admitted to the engine, not started yet
        self.running = 0  # started, not finished (one at most)
        self.closing = False
        self._seconds = 5.0  # a moving average of a turn's duration, for Retry-After

    def submit(self, fn: Callable[[], Any]) -> Future:
        """Queue `fn` on the engine, or raise Busy: `limit` requests may wait behind the running one."""
        with self._lock:
            if self.closing:
                raise Busy("the server is stopping", 5, status=503)
            if self.waiting >= self.limit:
                raise Busy(f"the soul is busy: {self.waiting} requests wait for its model behind the one "
                           f"it answers (the limit is {self.limit})", self.retry_after())
            self.waiting += 1

        def timed():
            with self._lock:
                self.waiting -= 1
                self.running += 1
            started = monotonic()
            try:
                return fn()
            finally:
                with self._lock:
                    self.running -= 1
                    self._seconds = 0.8 * self._seconds + 0.2 * (monotonic() - started)

        future = self._engine.submit(timed)
        future.add_done_callback(self._cancelled)
        return future

    def _cancelled(self, future: Future) -> None:
        if future.cancelled():  # it never ran, so never left the queue
            with self._lock:
                self.waiting -= 1

    def control(self, fn: Callable[[], Any]) -> Future:
        """The server's own work on the engine's worker (a switch of generation, a release), in
        line with the turns but outside their queue limit: it runs between two turns."""
        return self._engine.submit(fn)

    def retry_after(self) -> int:
        return max(1, math.ceil(self._seconds * (self.waiting + self.running)))

    async def engine(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.wrap_future(self.submit(fn))

    async def memory(self, fn: Callable[[], Any]) -> Any:
        if self.closing:
            raise Busy("the server is stopping", 5, status=503)
        return await asyncio.wrap_future(self._memory.submit(fn))

    def close(self) -> None:
        """Refuse new work, let what was admitted finish."""
        with self._lock:
            self.closing = True
        self._engine.shutdown(wait=True)
        self._memory.shutdown(wait=True)
