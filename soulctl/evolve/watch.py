"""A cycle you can watch: while `evolve` runs, its stage, the progress of the work inside it and
an estimate of what is left are kept in data/evolve.json (`soulctl status` reads it), and a
reader that is not a terminal gets a plain line at least every HEARTBEAT_S seconds — a
scheduler's log shows a night that is alive, not one line at its end."""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from soulctl.home import Home
from soulctl.processes import alive

STATE = "evolve.json"  # in data/, beside evolve.lock
HEARTBEAT_S = 20.0  # the longest a non-terminal reader waits for a line (DESIGN's progress rule: ≤ 30 s)
WRITE_S = 2.0  # how stale data/evolve.json may be while a stage runs


class Watch:
    """The cycle's running state: `stage(name)` as each step starts, `progress(inner)` to see
    the work inside a step; a thread writes the state and, given `heartbeat`, says a line."""

    def __init__(self, home: Home, steps: list[str], heartbeat: Callable[[str], None] | None = None,
                 every: float = HEARTBEAT_S):
        self.path = home.data / STATE
        self.steps, self.heartbeat, self.every = steps, heartbeat, every
        self.started = time.time()
        self.stage_name: str | None = None
        self.stage_started = self.started
        self.task: dict | None = None  # {"description", "done", "total", "started"}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Watch:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()
        self._thread = threading.Thread(target=self._loop, name="soulctl-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.path.unlink(missing_ok=True)

    def stage(self, name: str) -> None:
        self.stage_name, self.stage_started, self.task = name, time.time(), None
        self._write()

    def progress(self, inner):
        """`inner` (the CLI's bars, a line per step, or None) with every task seen here too."""
        return _Seen(self, inner)

    def state(self) -> dict:
        now = time.time()
        state = {"pid": os.getpid(), "started": round(self.started, 3), "steps": self.steps,
                 "stage": self.stage_name, "step": (self.steps.index(self.stage_name) + 1
                                                    if self.stage_name in self.steps else None),
                 "stage_started": round(self.stage_started, 3), "elapsed_s": round(now - self.started, 1)}
        if task := self.task:
            done, total = task["done"], task["total"]
            eta = None
            if total and done:
                eta = round((now - task["started"]) / done * max(total - done, 0), 1)
            state["progress"] = {"task": task["description"], "done": done, "total": total, "eta_s": eta}
        return state

    def line(self) -> str:
        """`dream: 95 s (Training: 12 of 40, ~3 min left); 2 of 5 steps done`."""
        s = self.state()
        text = f"{s['stage'] or 'starting'}: {time.time() - self.stage_started:.0f} s"
        if p := s.get("progress"):
            of = f"{p['done']:g} of {p['total']:g}" if p["total"] else f"{p['done']:g}"
            text += f" ({p['task']}: {of}" + (f", ~{_span(p['eta_s'])} left" if p["eta_s"] is not None else "") + ")"
        if s["step"]:
            text += f"; {s['step'] - 1} of {len(self.steps)} steps done"
        return text

    def _loop(self) -> None:
        said = time.monotonic()
        while not self._stop.wait(min(WRITE_S, self.every)):
            self._write()
            if self.heartbeat and time.monotonic() - said >= self.every:
                self.heartbeat(self.line())
                said = time.monotonic()

    def _write(self) -> None:
        tmp = self.path.with_name(f".{STATE}.{os.getpid()}")
        try:
            tmp.write_text(json.dumps(self.state()) + "\n")
            os.replace(tmp, self.path)
        except OSError:  # a full disk must not end the night over its progress report
            tmp.unlink(missing_ok=True)


class _Seen:
    def __init__(self, watch: Watch, inner):
        self.watch, self.inner = watch, inner

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator:
        from soulctl.progress import progress_task

        seen = {"description": description, "done": 0.0, "total": total, "started": time.time()}
        self.watch.task = seen
        with progress_task(self.inner, description, total) as task:
            yield _SeenTask(seen, task)


class _SeenTask:
    def __init__(self, seen: dict, task):
        self.seen, self.task = seen, task

    def advance(self, n: float = 1) -> None:
        self.seen["done"] += n
        self.task.advance(n)

    def update(self, *, completed=None, total=None, description=None) -> None:
        if completed is not None:
            self.seen["done"] = completed
        if total is not None:
            self.seen["total"] = total
        if description is not None:
            self.seen["description"] = description
        self.task.update(completed=completed, total=total, description=description)


def running(home: Home) -> dict | None:
    """The cycle running in `home` now, as its watch last wrote it (None when none runs: no
    state, or its process is gone — a killed cycle's file is stale)."""
    path = home.data / STATE
    try:
        state = json.loads(path.read_text())
        holder = int((home.data / "evolve.lock").read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("pid") != holder or not alive(holder):
        return None
    state["elapsed_s"] = round(time.time() - float(state.get("started", time.time())), 1)
    return state


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
