"""soulctl status: the living daemon on one screen."""

from __future__ import annotations

from soulctl.cli import state

HELP = """What the soul is doing: the generation served beside `current`, the server (up since,
released for the night, its sessions and their window's fill), the service, the schedule and
the next run, a cycle running now (its stage and what is left), the last cycle and how it ended, the log's size.

  soulctl status
  soulctl status --json | jq .server.sessions
"""


def run() -> None:
    from soulctl.status import status

    state.out.record(status(state.soul()), id_key="current", human=_render)


def _render(r: dict) -> str:
    lines = [f"home       {r['home']}", f"current    {r['current']} (anchor {r['anchor']}, {r['generations']} generations)"
             if r["current"] else "current    none (no generation can be read; soulctl gen ls)"]
    for name in ("server", "service", "schedule", "cycle", "last_cycle", "log"):
        part = r[name]
        if isinstance(part, dict) and "error" in part:
            lines.append(f"{name.replace('_', ' '):10s} cannot read: {part['error']}")
        else:
            lines += RENDER[name](part, r)
    return "\n".join(lines)


def _server(server: dict, r: dict) -> list[str]:
    if not server["running"]:
        return ["server     not running (soulctl serve, or soulctl service install)"]
    state_ = "released for the night" if server["released"] else f"serving {server['generation']}"
    lines = [f"server     {state_} at {server['url']} (pid {server['pid']}, up since {server['since']})"]
    if server["generation"] not in (None, r["current"]) and not server["released"]:
        lines.append(f"           (current is {r['current']}: it switches within a second)")
    for s in server["sessions"]:
        lines.append(f"  session  {s['session']}: {s['turns']} turns, window {100 * s['fill']:.0f}% full "
                     f"({s['window_tokens']} of {s['window_sector']} tokens)")
    return lines


def _service(svc: dict, r: dict) -> list[str]:
    if not svc["installed"]:
        return []
    return [f"service    {svc['name']} ({svc['scheduler']}), "
            + ("running" if svc["active"] else "not running" if svc["active"] is False else "installed")]


def _schedule(timer: dict, r: dict) -> list[str]:
    return [f"schedule   {timer['name']} ({timer['scheduler']}), next run {timer['next_run']}"
            if timer["installed"] else "schedule   none (soulctl schedule install)"]


def _running(cycle: dict | None, r: dict) -> list[str]:
    if not cycle:
        return []
    steps = cycle.get("steps") or []
    line = (f"cycle      running since {cycle['since']} (pid {cycle['pid']}): {cycle['stage'] or 'starting'}"
            + (f", step {cycle['step']} of {len(steps)}" if cycle.get("step") else ""))
    from soulctl.status import progress_text

    return [line + progress_text(cycle.get("progress"))]


def _cycle(cycle: dict | None, r: dict) -> list[str]:
    if not cycle:
        return ["last cycle none yet (soulctl evolve)"]
    drift = f", drift {cycle['drift']:.6f}" if cycle.get("drift") is not None else ""
    return [f"last cycle {cycle['ts']}: {cycle['status']}{' → ' + cycle['generation'] if cycle['generation'] else ''}"
            f"{drift} — {cycle['reason']}"]


RENDER = {"server": _server, "service": _service, "schedule": _schedule, "cycle": _running, "last_cycle": _cycle,
          "log": lambda log, r: [f"log        {log['packets']} packets"]}
