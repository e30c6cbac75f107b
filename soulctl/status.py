"""`soulctl status`: the living daemon on one screen — the generation served beside `current`,
the server (up since when, released for the night or not, its open sessions and how full their
windows are), the service and the schedule, the last cycle and how it ended, the next one, the
log's size. Reads only; asks a running server over its control channel."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from soulctl.soul import Soul


def status(soul: Soul) -> dict:
    from soulctl.evolve import schedule
    from soulctl.evolve.cycle import last_cycle
    from soulctl.generations import current, generation_ids
    from soulctl.serve import control, service

    home = soul.home
    ids = generation_ids(home)
    server = {"running": False}
    if (state := control.running(home)) is not None:
        answer = control.ask(home, {"op": "status"}, timeout=10) or {}
        server = {"running": True, "pid": state["pid"], "url": state.get("url"),
                  "since": _iso(state.get("since")), "generation": answer.get("generation"),
                  "released": answer.get("released"), "lease": answer.get("lease"),
                  "switches": answer.get("switches"), "queued": answer.get("queued"),
                  "sessions": answer.get("sessions", [])}
    last = last_cycle(soul.store)
    cycle = None
    if last is not None:
        meta = (last.meta or {}).get("evolve", {})
        cycle = {"ts": last.ts.isoformat(timespec="seconds"), "status": meta.get("status"),
                 "generation": meta.get("generation"), "drift": meta.get("drift"), "reason": meta.get("reason"),
                 "seconds": (meta.get("timings") or {}).get("total")}
    timer = schedule.installed(home)
    return {
        "home": str(home.root), "current": current(home), "anchor": ids[0] if ids else None,
        "generations": len(ids), "served": server.get("generation"), "server": server,
        "service": service.status(home),
        "schedule": {"installed": timer is not None, **({"name": timer["name"], "scheduler": timer["scheduler"],
                                                         "next_run": schedule.next_run(timer)} if timer else {})},
        "last_cycle": cycle, "log": {"packets": soul.store.count()},
    }


def _iso(epoch) -> str | None:
    if epoch is None:
        return None
    return _dt.datetime.fromtimestamp(float(epoch), _dt.timezone.utc).isoformat(timespec="seconds")
