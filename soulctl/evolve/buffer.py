"""resonate buffer: the resonant moments no layer of the current generation has learned,
each paired with the turns before it, written as a chat-format training buffer
(data/buffers/<id>.jsonl, readable by mlx-lm lora and TRL) with the log ids and thresholds
beside it (<id>.json)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os

import numpy as np

from soulctl.errors import InvalidInput
from soulctl.home.recipe_schemas import ResonateRecipe
from soulctl.home import Home
from soulctl.log import Store
from soulctl.prose import flaws

ROLE_MAP = {"user": "user", "soul": "assistant", "system": "system"}


class NothingNew(InvalidInput):
    """No moment qualifies for a new buffer: not an error for a nightly cycle, which then does
    nothing; exit 5 for `resonate buffer`, which was asked for one."""


def learned_ids(home: Home, gid: str | None = None) -> set[str]:
    """The log ids every adapter layer in `gid`'s lineage (default: current) learned from,
    those its buffers left out as near-duplicates of what they taught, and those they held out."""
    from soulctl.generations import current, read_lineage

    gid = gid or current(home)
    if gid is None:
        return set()
    ids: set[str] = set()
    for adapter in read_lineage(home, gid).adapters:
        meta = home.adapters / adapter / "meta.json"
        if meta.is_file():
            record = json.loads(meta.read_text())
            ids.update(record.get("log_ids") or [])
            ids.update(record.get("covered_ids") or [])
            ids.update(record.get("held_out_ids") or [])  # a held-out slice is never trained on later
    return ids


def census(home: Home, store: Store, threshold: float, role: str = "soul",
           include_learned: bool = False) -> dict:
    """How many replies of `role` qualify for the next buffer, and why the rest do not."""
    meta, _ = store.vectors(role)
    learned = set() if include_learned else learned_ids(home)
    return census_of(meta, learned, store.latest_marks("mark"), threshold, role)


def census_of(meta: list[dict], learned: set[str], explicit: dict, threshold: float, role: str) -> dict:
    """The census over the log's rows: qualify, and each reason not to (the first that applies:
    unscored, below the threshold, degenerate and why, already learned)."""
    out = {"role": role, "threshold": threshold, "replies": 0, "qualify": 0,
           "unscored": 0, "below": 0, "degenerate": {}, "learned": 0}
    for m in meta:
        if m["role"] != role:
            continue
        out["replies"] += 1
        found = [] if m["id"] in explicit else flaws(m["prose"])
        if m["resonance"] is None:
            out["unscored"] += 1
        elif found:
            out["degenerate"][found[0]] = out["degenerate"].get(found[0], 0) + 1
        elif m["resonance"] < threshold:
            out["below"] += 1
        elif m["id"] in learned:
            out["learned"] += 1
        else:
            out["qualify"] += 1
    return out


def census_line(c: dict) -> str:
    """The census in one line: `12 of 40 soul replies qualify (≥ 0.6); 20 below, 5 degenerate
    (repetitive 3, boilerplate 2), 3 learned`."""
    rest = [f"{c['below']} below"] * bool(c["below"]) + [f"{c['unscored']} unscored"] * bool(c["unscored"])
    if c["degenerate"]:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(c["degenerate"].items(), key=lambda kv: -kv[1]))
        rest.append(f"{sum(c['degenerate'].values())} degenerate ({kinds})")
    rest += [f"{c['learned']} already learned"] * bool(c["learned"])
    return (f"{c['qualify']} of {c['replies']} {c['role']} replies qualify (resonance ≥ {c['threshold']})"
            + ("; not: " + ", ".join(rest) if rest else ""))


def build_buffer(home: Home, store: Store, recipe: ResonateRecipe,
                 threshold: float | None = None, cluster: int | None = None, k: int = 4,
                 role: str = "soul", include_learned: bool = False) -> dict:
    """The resonant replies no layer of the current generation has learned from (all of them
    with `include_learned`), plus the recipe's rehearsal share of learned ones."""
    threshold = recipe.threshold if threshold is None else threshold
    meta, vecs = store.vectors(None)
    learned = set() if include_learned else learned_ids(home)
    explicit = store.latest_marks("mark")
    # a degenerate reply is never learned from unless the user marked it (a score made before
    # resonance knew junk may still stand high)
    resonant = [i for i, m in enumerate(meta) if m["role"] == role and (m["resonance"] or 0) >= threshold
                and (m["id"] in explicit or not flaws(m["prose"]))]
    counts = census_of(meta, learned, explicit, threshold, role)
    try:
        chosen = _choose(meta, resonant, learned, recipe, store, threshold, cluster, k, role)
    except NothingNew as exc:
        exc.message += f" ({census_line(counts)})"
        raise
    kept, covered = _dedup(meta, vecs, chosen, resonant, learned, recipe.dedup_cosine)
    lines, ids, unprompted = _examples(meta, kept, recipe.context_turns)
    held = held_out(lines, ids, recipe, learned) if recipe.holdout and not include_learned else None
    if held is not None:
        lines, ids = held.pop("lines"), held.pop("ids")
        held = held if held["held_ids"] else None  # too few examples to hold any out
    if not lines:
        one = len(unprompted) == 1
        alone = (f"the {len(unprompted)} new resonant {role} repl{'y' if one else 'ies'} "
                 f"answer{'s' if one else ''} no user turn")
        if done := sum(meta[i]["id"] in learned for i in resonant):
            raise NothingNew(f"nothing new: {done} {role} packets at or above {threshold} were learned by "
                             f"the current generation, and {alone}", hint="talk more first")
        raise NothingNew(f"no example to learn from: {alone}", hint="talk more first")
    record = _record(threshold, recipe, cluster, counts, covered, unprompted, meta, resonant, learned)
    return _write(home, lines, ids, record if held is None else {**record, "holdout": held})


def _record(threshold, recipe, cluster, counts, covered, unprompted, meta, resonant, learned) -> dict:
    return {"threshold": threshold, "dedup_cosine": recipe.dedup_cosine, "cluster": cluster, "census": counts,
            "context_turns": recipe.context_turns, "dropped_duplicates": len(covered), "covered_ids": covered,
            "dropped_unprompted": len(unprompted),
            "skipped_learned": sum(meta[i]["id"] in learned for i in resonant)}


def held_out(lines: list[str], ids: list[str], recipe: ResonateRecipe, learned: set[str]) -> dict:
    """The night's new examples split by the recipe's seed: a held-out slice of `holdout` of
    them, grown until it is at least `holdout_min_tokens` long (tokens estimated at 4
    characters) while at least one example stays to train on; rehearsed ones are never held
    out. Returns the examples to train on (`lines`, `ids`) and the slice's record (its seed,
    ids and examples; the examples are written beside the buffer, data/buffers/<id>.holdout)."""
    import random

    order = [i for i in range(len(lines)) if ids[i] not in learned]
    random.Random(f"{recipe.holdout_seed}:{','.join(ids)}").shuffle(order)
    held: list[int] = []
    for i in order[:-1]:  # one at least is trained on
        if len(held) >= recipe.holdout * len(lines) and sum(len(lines[j]) for j in held) / 4 >= recipe.holdout_min_tokens:
            break
        held.append(i)
    keep = sorted(set(range(len(lines))) - set(held))
    held.sort()
    return {"lines": [lines[i] for i in keep], "ids": [ids[i] for i in keep], "seed": recipe.holdout_seed,
            "share": recipe.holdout, "held_lines": [lines[i] for i in held], "held_ids": [ids[i] for i in held],
            "tokens": round(sum(len(lines[i]) for i in held) / 4)}


def _choose(meta, resonant, learned, recipe, store, threshold, cluster, k, role) -> list[int]:
    """The new resonant moments (and the rehearsal share of learned ones), most resonant first."""
    chosen = [i for i in resonant if meta[i]["id"] not in learned]
    if chosen and recipe.rehearsal > 0:  # replay: the most resonant of what was learned before
        old = sorted((i for i in resonant if meta[i]["id"] in learned), key=lambda i: -(meta[i]["resonance"] or 0))
        chosen += old[:round(recipe.rehearsal * len(chosen))]
    if cluster is not None:
        from soulctl.evolve.resonate import clusters

        groups = clusters(store, threshold, k, role)
        if not 0 <= cluster < k:
            raise InvalidInput(f"--cluster {cluster} is outside 0..{k - 1}")
        wanted = set(groups["clusters"][cluster]["ids"])
        chosen = [i for i in chosen if meta[i]["id"] in wanted]
    if not chosen:
        if resonant and learned:
            raise NothingNew(f"nothing new: all {len(resonant)} {role} packets at or above {threshold} "
                             "were learned by the current generation",
                             hint="talk more first, or --include-learned to train on them again")
        raise NothingNew(f"no {role} packet has resonance at or above {threshold}",
                         hint="score first (soulctl resonate score), mark some, or lower --threshold")
    return sorted(chosen, key=lambda i: -(meta[i]["resonance"] or 0))


def sizing_examples(home: Home, store: Store, recipe: ResonateRecipe, include_learned: bool = False) -> list[str]:
    """Every example the night's buffer could hold, as chat lines: each reply not degenerate
    that qualifies or is not scored yet (and not learned, unless learned ones may come back),
    with its context. Read before the cycle scores anything, so `evolve --dry-run` and the
    cycle size the night's dream on the same examples (evolve/night.py)."""
    meta, _ = store.vectors(None)
    learned = set() if include_learned or recipe.rehearsal else learned_ids(home)
    explicit = store.latest_marks("mark")
    may = [i for i, m in enumerate(meta) if m["role"] == "soul" and m["id"] not in learned
           and (m["id"] in explicit or not flaws(m["prose"]))
           and (m["resonance"] is None or m["resonance"] >= recipe.threshold)]
    return _examples(meta, may, recipe.context_turns)[0]


def _dedup(meta, vecs, chosen, resonant, learned, cosine) -> tuple[list[int], list[str]]:
    """Greedy: the most resonant of each near-duplicate group stays; a new moment that repeats
    one already learned, or one kept here, is covered — and counted as learned from now on, so
    it does not come back in a later buffer. (kept in log order, covered ids)"""
    taught = vecs[[i for i in resonant if meta[i]["id"] in learned]] if learned else vecs[:0]
    kept: list[int] = []
    covered: list[str] = []
    for i in chosen:
        twins = vecs[kept] if meta[i]["id"] in learned else np.vstack([taught, vecs[kept]])
        if not len(twins) or float((twins @ vecs[i]).max()) < cosine:
            kept.append(i)
        else:
            covered.append(meta[i]["id"])
    return sorted(kept, key=lambda i: meta[i]["seq"]), covered


def _examples(meta, kept, context_turns: int) -> tuple[list[str], list[str], list[str]]:
    """Each kept reply with up to `context_turns` turns before it in its session, as a chat
    example; a reply with no user turn before it teaches nothing (left out, counted)."""
    by_session: dict[str, list[int]] = {}
    for i, m in enumerate(meta):
        by_session.setdefault(m["session"], []).append(i)
    lines, ids, unprompted = [], [], []
    for i in kept:
        session = by_session[meta[i]["session"]]
        pos = session.index(i)
        messages = [_message(meta[j]) for j in session[max(0, pos - context_turns):pos]]
        while messages and messages[0]["role"] == "assistant":
            messages.pop(0)
        if not any(m["role"] == "user" for m in messages):
            unprompted.append(meta[i]["id"])
            continue
        messages.append({"role": "assistant", "content": meta[i]["prose"]})
        lines.append(json.dumps({"messages": messages}, ensure_ascii=False))
        ids.append(meta[i]["id"])
    return lines, ids, unprompted


def _write(home: Home, lines: list[str], ids: list[str], record: dict) -> dict:
    """The buffer and its record, each written whole (a temporary file renamed into place)."""
    body = ("\n".join(lines) + "\n").encode("utf-8")
    sha = hashlib.sha256(body).hexdigest()
    buffer_id = "buf-" + sha[:12]
    home.buffers.mkdir(parents=True, exist_ok=True)
    path = home.buffers / f"{buffer_id}.jsonl"
    record = {"id": buffer_id, "sha256": sha, "examples": len(lines), "log_ids": ids, **record,
              "created_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}
    files = [(path, body)]
    if "holdout" in record:  # the held-out slice beside it, never read as a buffer (not *.jsonl)
        held = record["holdout"] = dict(record["holdout"])
        files.append((home.buffers / f"{buffer_id}.holdout", ("\n".join(held.pop("held_lines")) + "\n").encode("utf-8")))
        held["examples"] = len(held["held_ids"])
    files.append((path.with_suffix(".json"), (json.dumps(record, indent=1) + "\n").encode()))
    for target, data in files:
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return {**record, "path": str(path)}


def _message(packet: dict) -> dict:
    role = ROLE_MAP.get(packet["role"], "user")
    content = packet["prose"] if packet["role"] in ROLE_MAP else f"[{packet['role']}] {packet['prose']}"
    return {"role": role, "content": content}
