"""soulctl status: the living daemon on one screen."""

from __future__ import annotations

from soulctl.cli import state

HELP = """What the soul is doing: the generation served beside `current`, the server (up since,
released for the night, its sessions and their window's fill), the service, the schedule and
the next run, the last cycle and how it ended, the log's size.

  soulctl status
  soulctl status --json | jq .server.sessions
"""


def run() -> None:
    from soulctl.status import status

    state.out.record(status(state.soul()), id_key="current", human=_render)


def _render(r: dict) -> str:
    server, cycle, timer, svc = r["server"], r["last_cycle"], r["schedule"], r["service"]
    lines = [f"home       {r['home']}", f"current    {r['current']} (anchor {r['anchor']}, {r['generations']} generations)"]
    if server["running"]:
        state_ = "released for the night" if server["released"] else f"serving {server['generation']}"
        lines.append(f"server     {state_} at {server['url']} (pid {server['pid']}, up since {server['since']})")
        if server["generation"] not in (None, r["current"]) and not server["released"]:
            lines.append(f"           (current is {r['current']}: it switches within a second)")
        for s in server["sessions"]:
            lines.append(f"  session  {s['session']}: {s['turns']} turns, window {100 * s['fill']:.0f}% full "
                         f"({s['window_tokens']} of {s['window_sector']} tokens)")
    else:
        lines.append("server     not running (soulctl serve, or soulctl service install)")
    if svc["installed"]:
        lines.append(f"service    {svc['name']} ({svc['scheduler']}), "
                     + ("running" if svc["active"] else "not running" if svc["active"] is False else "installed"))
    lines.append(f"schedule   {timer['name']} ({timer['scheduler']}), next run {timer['next_run']}"
                 if timer["installed"] else "schedule   none (soulctl schedule install)")
    if cycle:
        drift = f", drift {cycle['drift']:.6f}" if cycle.get("drift") is not None else ""
        lines.append(f"last cycle {cycle['ts']}: {cycle['status']}{' → ' + cycle['generation'] if cycle['generation'] else ''}"
                     f"{drift} — {cycle['reason']}")
    else:
        lines.append("last cycle none yet (soulctl evolve)")
    lines.append(f"log        {r['log']['packets']} packets")
    return "\n".join(lines)
