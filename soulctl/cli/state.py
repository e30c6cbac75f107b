"""Process-wide CLI state set once by the root callback: the output object, --home, and the
one Soul handle the command holds (closed by the CLI when the command ends)."""

from __future__ import annotations

from soulctl.cli.output import Output
from soulctl.home import Home, find_home

out = Output()
home_flag: str | None = None
_soul = None


def home() -> Home:
    return find_home(home_flag)


def optional_home() -> Home | None:
    from soulctl.errors import HomeNotFound

    try:
        return find_home(home_flag)
    except HomeNotFound:
        return None


def soul():
    """The Soul of the home this command runs in, opened once."""
    global _soul
    if _soul is None:
        from soulctl.soul import Soul

        _soul = Soul(home())
    return _soul


def close() -> None:
    """Finish the soul's background writes and close its engines."""
    global _soul
    if _soul is not None:
        soul_, _soul = _soul, None
        soul_.close()
