"""`soulctl status`: the living daemon on one screen — the generation served beside `current`,
the server (up since when, released for the night or not, its open sessions and how full their
windows are), the service and the schedule, a cycle running now (its stage, progress and
what is left), the last cycle and how it ended, the next one, the
log's size. Reads only; asks a running server over its control channel."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from soulctl.soul import Soul


def status(soul: Soul, server=None) -> dict:
    """Every part of the soul's state that can be read; a part that cannot (a missing data/,
    a corrupt record) says why in its own `error`, and the rest is still reported. `server`:
    how to read the server's part (default: ask the running server over its control channel;
    the server itself reads its own)."""
    from soulctl.generations import current, generation_ids
    from soulctl.serve import service

    home = soul.home
    gens = _part("generations", lambda: (current(home), generation_ids(home)))["generations"]
    cur, ids = gens if isinstance(gens, tuple) else (None, [])
    record = {
        "home": str(home.root), "current": cur, "anchor": ids[0] if ids else None,
        "generations": len(ids), **_part("server", server or (lambda: _server(home))),
        **_part("service", lambda: service.status(home)), **_part("schedule", lambda: _schedule(home)),
        **_part("cycle", lambda: _running(home)), **_part("last_cycle", lambda: _cycle(soul)), **_part("log", lambda: {"packets": soul.store.count()}),
    }
    record["served"] = record["server"].get("generation")
    return record


def _part(name: str, read) -> dict:
    from soulctl.errors import SoulError

    try:
        return {name: read()}
    except SoulError as exc:
        return {name: {"error": exc.message}}
    except OSError as exc:  # the machine refused (permissions, a vanished file)
        return {name: {"error": f"{exc.filename or 'a file'}: {exc.strerror or exc}"}}


def _server(home) -> dict:
    from soulctl.home import control

    if (state := control.running(home)) is None:
        return {"running": False}
    answer = control.ask(home, {"op": "status"}, timeout=10) or {}
    return {"running": True, "pid": state.get("pid"), "url": state.get("url"),
            "since": _iso(state.get("since")), "generation": answer.get("generation"),
            "released": answer.get("released"), "lease": answer.get("lease"),
            "switches": answer.get("switches"), "queued": answer.get("queued"),
            "sessions": answer.get("sessions", [])}


def _schedule(home) -> dict:
    from soulctl.evolve import schedule

    timer = schedule.installed(home)
    return {"installed": timer is not None, **({"name": timer["name"], "scheduler": timer["scheduler"],
                                                "next_run": schedule.next_run(timer)} if timer else {})}


def _running(home) -> dict | None:
    """The cycle running now: its stage, the work inside it and what is left (None: none runs)."""
    from soulctl.evolve.watch import running

    state = running(home)
    if state is None:
        return None
    return {"pid": state["pid"], "since": _iso(state.get("started")), "elapsed_s": state["elapsed_s"],
            "stage": state.get("stage"), "step": state.get("step"), "steps": state.get("steps"),
            "progress": state.get("progress")}


def _cycle(soul) -> dict | None:
    from soulctl.evolve.cycle import last_cycle

    last = last_cycle(soul.store)
    if last is None:
        return None
    meta = (last.meta or {}).get("evolve", {})
    return {"ts": last.ts.isoformat(timespec="seconds"), "status": meta.get("status"),
            "generation": meta.get("generation"), "drift": meta.get("drift"), "reason": meta.get("reason"),
            "seconds": (meta.get("timings") or {}).get("total")}


def progress_text(p: dict | None) -> str:
    """A running cycle's progress in words: ` — task 3 of 10, about 2 min left` ('' without one)."""
    if not p:
        return ""
    line = f" — {p['task']} {p['done']:g}" + (f" of {p['total']:g}" if p.get("total") else "")
    if p.get("eta_s") is not None:
        line += f", about {p['eta_s'] / 60:.0f} min left" if p["eta_s"] >= 90 else f", about {p['eta_s']:.0f} s left"
    return line


def _iso(epoch) -> str | None:
    if epoch is None:
        return None
    return _dt.datetime.fromtimestamp(float(epoch), _dt.timezone.utc).isoformat(timespec="seconds")
