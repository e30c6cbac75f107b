"""Process-wide CLI state set once by the root callback: the output object and --home."""

from __future__ import annotations

from soulctl.home import Home, find_home
from soulctl.output import Output

out = Output()
home_flag: str | None = None


def home() -> Home:
    return find_home(home_flag)


def optional_home() -> Home | None:
    from soulctl.errors import HomeNotFound

    try:
        return find_home(home_flag)
    except HomeNotFound:
        return None
