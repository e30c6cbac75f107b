"""The one output object: tables for people, JSON (lines) for machines, ids under -q.

Data goes to stdout, everything else (hints, warnings, errors, progress) to stderr. Leaf
commands never look at --json themselves: they hand records and rows to `out`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from soulctl.units import human_size


class PipeClosed(Exception):
    """stdout's reader went away (`| head`). Not an OSError, so click does not turn it into exit 1."""


def _default(obj: Any) -> Any:
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, decimal.Decimal):  # SQL DECIMAL: a JSON number
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    return str(obj)


def to_json(obj: Any) -> str:
    try:
        return json.dumps(obj, default=_default, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or ±Infinity: not JSON, so null
        return json.dumps(_finite(obj), default=_default, ensure_ascii=False, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _finite(obj.tolist())
    return obj


@dataclasses.dataclass
class Column:
    key: str
    header: str | None = None
    fmt: Callable[[Any], str] | None = None
    align: str = "left"  # or "right"

    def render(self, row: dict) -> str:
        value = row.get(self.key)
        if self.fmt is not None:
            return self.fmt(value)
        return "" if value is None else str(value)


class Output:
    def __init__(self, json_mode: bool = False, quiet: bool = False, verbose: bool = False):
        self.json = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self.stdout = sys.stdout
        self.stderr = sys.stderr

    # -- data (stdout) ----------------------------------------------------------------------
    def record(self, obj: dict, human: Callable[[dict], str] | None = None,
               id_key: str | None = "id") -> None:
        """One object: JSON under --json, its id under -q, `human(obj)` otherwise."""
        if self.json:
            self._write(to_json(obj))
        elif self.quiet:
            if id_key and obj.get(id_key) is not None:
                self._write(str(obj[id_key]))
        else:
            self._write(human(obj) if human else _key_values(obj))

    def rows(self, rows: Iterable[dict], columns: Sequence[Column], id_key: str = "id",
             empty: str | None = None) -> int:
        """A listing: JSON lines (streamed), ids one per line, or an aligned table."""
        count = 0
        if self.json or self.quiet:
            for row in rows:
                count += 1
                self._write(to_json(row) if self.json else str(row.get(id_key, "")))
            return count
        materialized = list(rows)
        count = len(materialized)
        if not materialized:
            if empty:
                self.hint(empty)
            return 0
        lines = table([(c.header or c.key).upper() for c in columns],
                      [[c.render(r) for c in columns] for r in materialized], [c.align for c in columns])
        self._write(self._style(lines[0], "bold") if self.stdout.isatty() else lines[0])
        for line in lines[1:]:
            self._write(line)
        return count

    def text(self, text: str, end: str = "\n", flush: bool = True) -> None:
        """Raw data text (a reply, an export) on stdout."""
        try:
            self.stdout.write(text + end)
            if flush:
                self.stdout.flush()
        except BrokenPipeError:
            raise PipeClosed from None

    # -- everything else (stderr) -----------------------------------------------------------
    def hint(self, message: str) -> None:
        if not self.quiet:
            self._err(self._style(message, "dim"))

    def info(self, message: str) -> None:
        if not self.quiet:
            self._err(message)

    def warn(self, message: str) -> None:
        from soulctl.secrets import redact

        self._err(self._style(f"warning: {redact(message)}", "yellow"))

    def error(self, message: str, hint: str | None = None) -> None:
        from soulctl.secrets import redact

        line = " ".join(f"error: {message}".split("\n")) + (f" — {hint}" if hint else "")
        self._err(self._style(redact(line), "red"))

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and self.stderr.isatty()

    @contextmanager
    def progress_bars(self) -> Iterator[Any]:
        """A progress provider for library calls: rich bars on a terminal, silent otherwise."""
        from soulctl.progress import NULL, LineProgress

        if self.quiet:
            yield NULL
            return
        if not self.stderr.isatty():  # a log file, a scheduler: one line per long step, with its time
            yield LineProgress(lambda line: self._err(f"· {line}"))
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bars = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=Console(file=self.stderr), transient=True)
        with bars:
            yield _RichProgress(bars)

    # -- plumbing ---------------------------------------------------------------------------
    def _write(self, line: str) -> None:
        try:
            self.stdout.write(line + "\n")
        except BrokenPipeError:
            raise PipeClosed from None

    def _err(self, line: str) -> None:
        self.stderr.write(line + "\n")
        self.stderr.flush()

    def _style(self, text: str, style: str) -> str:
        codes = {"bold": "1", "dim": "2", "red": "31", "yellow": "33", "green": "32"}
        stream_tty = self.stderr.isatty() if style != "bold" else self.stdout.isatty()
        if not stream_tty or style not in codes:
            return text
        return f"\033[{codes[style]}m{text}\033[0m"


class _RichTask:
    def __init__(self, bars, task_id):
        self._bars, self._id = bars, task_id

    def advance(self, n: float = 1) -> None:
        self._bars.advance(self._id, n)

    def update(self, *, completed=None, total=None, description=None) -> None:
        kwargs = {k: v for k, v in (("completed", completed), ("total", total),
                                    ("description", description)) if v is not None}
        self._bars.update(self._id, **kwargs)


class _RichProgress:
    def __init__(self, bars):
        self._bars = bars

    @contextmanager
    def task(self, description: str, total: float | None = None):
        task_id = self._bars.add_task(description, total=total)
        try:
            yield _RichTask(self._bars, task_id)
        finally:
            self._bars.remove_task(task_id)


def table(headers: Sequence[str], cells: Sequence[Sequence[str]], aligns: Sequence[str] = ()) -> list[str]:
    """Aligned lines (the header first): two spaces between columns, each "left" or "right";
    the last column is not padded. The one table drawing every command's output uses."""
    aligns = list(aligns) or ["left"] * len(headers)
    widths = [max(len(h), *(len(line[i]) for line in cells)) if cells else len(h)
              for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = []
        for i, value in enumerate(values):
            last = i == len(values) - 1
            parts.append(value.rjust(widths[i]) if aligns[i] == "right" else value if last else value.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    return [line(headers)] + [line(row) for row in cells]


def _key_values(obj: dict) -> str:
    width = max((len(k) for k in obj), default=0)
    lines = []
    for key, value in obj.items():
        if isinstance(value, (dict, list)):
            value = to_json(value)
        lines.append(f"{key.ljust(width)}  {'' if value is None else value}")
    return "\n".join(lines)


human_bytes = human_size  # one formatter for library and CLI (units.py)
