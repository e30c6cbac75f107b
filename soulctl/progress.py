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


@contextmanager
def progress_task(progress, description: str, total: float | None = None) -> Iterator[Task]:
    """A task of `progress`, or a silent one when there is no progress to report to."""
    if progress is None:
        yield _NullTask()
        return
    with progress.task(description, total) as task:
        yield task
