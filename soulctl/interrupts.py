"""Ctrl-C held back while a write finishes, so that an interrupt never splits one.

A SIGINT that lands inside a database call is turned by the driver into an error of its own
(DuckDB: "Query interrupted"), and one that lands between a commit and the checkpoint after it
leaves a batch written but not reported. Inside `deferred()` the first Ctrl-C is noted and
raised as KeyboardInterrupt once the block is done; a second one is raised at once, for a user
who will not wait (the database's own transaction then rolls the unfinished write back).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def deferred() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only; its own deferral covers this one
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield  # someone else handles Ctrl-C here (ignored, or an outer deferral): leave it to them
        return
    caught = []

    def note(signum, frame):
        caught.append(signum)
        if len(caught) > 1:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


@contextmanager
def stoppable() -> Iterator[threading.Event]:
    """Ctrl-C as a request to stop, not an exit: the first press sets the event (the caller
    stops at its next step — a reply at its next token), a second raises KeyboardInterrupt."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def note(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, note)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
