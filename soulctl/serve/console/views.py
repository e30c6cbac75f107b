"""What each console page shows, read from the library the CLI uses (`soulctl status`,
`gen ls`/`gen show`, `anchor drift`'s cached figures, `notebook history`, `log search`,
`mount ls`): plain dicts for the templates. Nothing here loads a model: a figure that needs
one (a probe loss not measured yet) is shown as not measured."""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from soulctl.serve.context import Served
    from soulctl.soul import Soul

CITE = re.compile(r"\[log ([0-9a-zA-Z_-]{4,64})\]")


def now(served: Served) -> dict:
    """The daemon's state: what `soulctl status` reads, with the server's part from this server."""
    from soulctl.status import status

    state = status(served.soul, server=lambda: {"running": True, "url": served.url,
                                                 **served.follower.status()})
    state["released"] = bool(state["server"].get("released"))
    state["doing"] = ("dreaming" if state["cycle"] else "released for the night" if state["released"]
                      else "serving")
    state["answering"] = "majordomo" if state["released"] and served.has_majordomo else "soul"
    state["night_text"] = _night_text(state["cycle"])
    return state


def _night_text(cycle: dict | None) -> str:
    """The cycle running now in one line, as `soulctl status` says it."""
    if not cycle:
        return "none running"
    if "error" in cycle:
        return f"cannot read: {cycle['error']}"
    from soulctl.status import progress_text

    return (f"{cycle.get('stage') or 'starting'} (running {cycle.get('elapsed_s', 0):.0f} s)"
            + progress_text(cycle.get("progress")))


def night_plan(soul: Soul) -> dict:
    """The night's phases against RAM (`budget --phase night`): each phase's own need, beside
    the running server and with it released, and whether the server must be released."""
    from soulctl.errors import SoulError
    from soulctl.evolve.night import phases

    try:
        night = phases(soul)["night"]
    except (SoulError, OSError) as exc:
        return {"error": str(exc)}
    rows = [{"phase": name, "bytes": sides["beside_server"]["bytes"],
             **{side: {"total": s["total_bytes"], "ram": s["ram_bytes"], "fits": s["fits"]} for side, s in sides.items()}}
            for name, sides in night["phases"].items()]
    return {"release": night.get("release"), "fits": night.get("fits"), "phases": rows}


def lineage(soul: Soul) -> dict:
    """Every generation with its drift, and from its cycle's record the probe loss against
    the anchor and the absorption; the anchor's bounds."""
    from soulctl.generations import generation_ids, summary

    home = soul.home
    cycles = _cycle_records(soul)
    rows = []
    for gid in generation_ids(home):
        row = summary(home, gid)
        record = cycles.get(gid, {})
        cached = _anchor_cache(home, gid)
        row.update(probe_loss_delta=record.get("probe_loss_delta"), absorption=record.get("absorption"),
                   held_out_absorption=record.get("held_out_absorption"),
                   probe_loss=record.get("probe_loss", cached.get("probe_loss")),
                   cycle=record.get("packet"), status=record.get("status"))
        rows.append(row)
    if rows:
        rows[0]["probe_loss_delta"] = 0.0
    limits = soul.recipe("anchor")
    return {"generations": rows, "max_drift": limits.max_drift,
            "max_probe_loss_delta": limits.max_probe_loss_delta}


def generation(soul: Soul, gid: str) -> dict:
    """`gen show` of one generation, its cycle's record and its behaviour diff when computed."""
    from soulctl.generations import read_lineage, resolve

    gid = resolve(soul.home, gid)
    record = read_lineage(soul.home, gid).as_dict()
    cycle = _cycle_records(soul).get(gid)
    from soulctl.evolve.behaviour import kept

    behaviour = kept(soul.home, record["parent"], gid) if record.get("parent") else None
    return {"id": gid, "lineage": record, "cycle": cycle, "behaviour": behaviour}


def _cycle_records(soul: Soul) -> dict[str, dict]:
    """The evolve cycles' records in the log, by the generation each made (newest wins)."""
    from soulctl.evolve.cycle import SESSION
    from soulctl.log import Filters

    found: dict[str, dict] = {}
    for packet in soul.store.list(Filters(role="system", session=SESSION), limit=None, newest_first=False):
        record = (packet.meta or {}).get("evolve") or {}
        if record.get("generation"):
            found[record["generation"]] = {**record, "packet": packet.id}
    return found


def _anchor_cache(home, gid: str) -> dict:
    path = home.data / "anchor" / f"{gid}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def memory(soul: Soul) -> dict:
    """The self-definition and notebook now, each version's diff against the one before, the
    packets their lines cite, and the mounts worn."""
    from soulctl.corpus.mounts import mounted, names
    from soulctl.memory.notebook import KINDS, current_all, version

    latest = current_all(soul)
    kinds = {}
    for kind in KINDS:
        versions = soul.store.memory_versions(kind)
        texts = {0: version(soul, kind, 0)["text"], **{v["version"]: v["text"] for v in versions}}
        history = []
        for v in reversed(versions[-20:]):  # the newest twenty, newest first
            before = texts.get(v["version"] - 1, "")
            diff = list(difflib.unified_diff(before.splitlines(), v["text"].splitlines(), lineterm="", n=1))[2:]
            history.append({**v, "ts": _when(v.get("ts")), "diff": diff})
        kinds[kind] = {"now": {**latest[kind], "ts": _when(latest[kind].get("ts"))},
                       "lines": [{"text": line, "cites": CITE.findall(line)}
                                 for line in latest[kind]["text"].splitlines()],
                       "history": history, "versions": len(versions)}
    return {"kinds": kinds, "mounted": mounted(soul.home), "corpora": names(soul.home)}


def search(soul: Soul, query: str, role: str | None, speaker: str | None, since: str | None,
           until: str | None, k: int = 10) -> list[dict]:
    """`log search` as the CLI runs it (hybrid, re-ranked), each hit a bifocal packet."""
    from soulctl.log import Filters
    from soulctl.log.ingest import check_role, parse_time
    from soulctl.log.search import search as run

    filters = Filters(role=check_role(role) if role else None, speaker=speaker or None,
                      since=parse_time(since, "since") if since else None,
                      until=parse_time(until, "until") if until else None)
    return [{"rank": i, "score": r.hit.score, **packet_view(r.packet)}
            for i, r in enumerate(run(soul.store, soul.embedder, query, k, "hybrid", filters), 1)]


def packet(soul: Soul, packet_id: str) -> dict:
    """One packet, both halves: its prose and meta, and its embedding's head and norm."""
    p = soul.store.get(packet_id, with_embedding=True)
    vector = p.embedding or []
    norm = sum(x * x for x in vector) ** 0.5
    return {**packet_view(p), "meta": json.dumps(p.meta or {}, indent=1, ensure_ascii=False),
            "dims": len(vector), "norm": norm, "head": [round(float(x), 4) for x in vector[:8]],
            "embed_model": p.embed_model, "parent": p.parent}


def packet_view(p) -> dict:
    return {"id": p.id, "ts": _when(p.ts), "role": p.role, "session": p.session, "prose": p.prose,
            "resonance": p.resonance, "generation": p.generation,
            "speaker": (p.meta or {}).get("speaker")}


def chat_window(served: Served, session: str) -> dict:
    """A console conversation's window as the soul holds it: its turns, fill and sector."""
    chat = (served.majordomo if served.released and served.majordomo else served.sessions).peek(session)
    if chat is None:
        return {"turns": [], "tokens": 0, "sector": None, "fill": 0.0}
    used, sector = chat.window_tokens(), chat.mem.window_tokens
    return {"turns": [{"role": t.role, "text": t.content} for t in chat.window],
            "tokens": used, "sector": sector, "fill": round(used / sector, 3)}


def _when(ts) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, str):
        return ts[:19].replace("T", " ")
    if isinstance(ts, _dt.datetime):
        return ts.strftime("%Y-%m-%d %H:%M:%S")
    return str(ts)
