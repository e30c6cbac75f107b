"""Processes on this machine, as the lock and staging code sees them."""

from __future__ import annotations

import os
import signal
import threading


def alive(pid: int) -> bool:
    """Whether process `pid` exists (one we may not signal still counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Interrupts:
    """Ctrl-C (SIGINT) taken between steps, not in the middle of one: DuckDB turns a SIGINT that
    lands in a statement into a RuntimeError, or swallows it when the statement cannot stop (a
    checkpoint), so a long write would otherwise fail oddly or run on. Inside `with`, the first
    Ctrl-C is noted and `check()` raises KeyboardInterrupt at the next step's end; a second one
    raises at once. Outside the main thread it does nothing (signals go to the main thread)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _note(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt
