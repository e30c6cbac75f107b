"""Progress reporting that library code can use without importing rich.

Library functions take a `progress` argument (anything with `.task(description, total)`);
the CLI passes a rich-backed one on a terminal, everyone else gets NullProgress.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol


class Task(Protocol):
    def advance(self, n: float = 1) -> None: ...

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None): ...


class _NullTask:
    def advance(self, n: float = 1) -> None:
        pass

    def update(self, *, completed=None, total=None, description=None) -> None:
        pass


class NullProgress:
    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[_NullTask]:
        yield _NullTask()


NULL = NullProgress()


class LineProgress:
    """Progress for a reader that is not a terminal (a log file, the scheduler's mail): a line
    every EVERY seconds while a step runs (what, how much of how much, about how long left), and
    one when a step that took a while ends — what it was, how much, how long."""

    MIN_SECONDS = 2.0  # quicker steps say nothing
    EVERY = 20.0  # DESIGN §9: at least every 30 s of a long step

    def __init__(self, say, every: float | None = None):
        self.say = say
        self.every = every or self.EVERY

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[_NullTask]:
        import threading
        import time

        started, counted, stop = time.perf_counter(), _CountingTask(), threading.Event()

        def beat():
            while not stop.wait(self.every):
                took = time.perf_counter() - started
                left = ""
                if total and counted.done:
                    left = f", ~{took / counted.done * max(total - counted.done, 0):.0f} s left"
                of = f"{counted.done:g}" + (f" of {total:g}" if total else "")
                self.say(f"{description}: {of} after {took:.0f} s{left}")

        beating = threading.Thread(target=beat, name="soulctl-progress", daemon=True)
        beating.start()
        try:
            yield counted
        finally:
            stop.set()
        took = time.perf_counter() - started
        if took >= self.MIN_SECONDS:
            done = f"{counted.done:g}" + (f" of {total:g}" if total else "") if counted.done else ""
            self.say(f"{description}: {done + ' ' if done else ''}in {took:.1f} s")


class _CountingTask(_NullTask):
    def __init__(self):
        self.done = 0.0

    def advance(self, n: float = 1) -> None:
        self.done += n

    def update(self, *, completed=None, total=None, description=None) -> None:
        if completed is not None:
            self.done = completed


@contextmanager
def progress_task(progress, description: str, total: float | None = None) -> Iterator[Task]:
    """A task of `progress`, or a silent one when there is no progress to report to."""
    if progress is None:
        yield _NullTask()
        return
    with progress.task(description, total) as task:
        yield task
