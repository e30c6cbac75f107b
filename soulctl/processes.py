"""Processes on this machine, as the lock and staging code sees them."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether process `pid` exists (one we may not signal still counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
