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
    """Progress for a reader that is not a terminal (a log file, the scheduler's mail): one line
    per step that took a while — what it was, how much, how long."""

    MIN_SECONDS = 2.0  # quicker steps say nothing

    def __init__(self, say):
        self.say = say

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[_NullTask]:
        import time

        started, counted = time.perf_counter(), _CountingTask()
        yield counted
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
