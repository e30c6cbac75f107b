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


_user_umask: int | None = None


def keep_private() -> None:
    """From now on this process creates what it writes private to its user (umask 077): the
    log, buffers, adapters, indexes and locks of a soul home. The user's own umask is kept for
    what soulctl writes on their behalf elsewhere (user_umask)."""
    global _user_umask
    previous = os.umask(0o077)
    if _user_umask is None:
        _user_umask = previous


def user_umask() -> int:
    """The umask the user started soulctl with (files they name honour it; so do the processes
    soulctl starts for them, such as the coding agent)."""
    if _user_umask is not None:
        return _user_umask
    current = os.umask(0o022)
    os.umask(current)
    return current
