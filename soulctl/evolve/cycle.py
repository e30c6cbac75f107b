"""evolve: one cycle of the nightly habit as one safe step.

score what is new → buffer the resonant moments no layer has learned → dream → merge (without
moving `current`) → check the new generation against the anchor with the recipe's limits →
move `current` only if it passes. A failed check keeps `current` where it was and marks the new
generation rejected (or removes it); too few new moments do nothing. One cycle at a time per
home (a lock); a cycle killed at any point leaves `current` on a verified generation, and
its leftovers (staged adapters, a generation never made current) are harmless and cleaned.
Every cycle ends in a system packet in the log: what it did, or why not.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager

from soulctl.errors import InvalidInput, Unavailable
from soulctl.home import Home
from soulctl.processes import alive

SESSION = "evolve"
REJECTED = "rejected"  # generations/rejected/<gid>.json: why a generation was not kept


@contextmanager
def cycle_lock(home: Home):
    """Exclusive for the whole cycle; a second `evolve` is refused at once, not queued."""
    home.data.mkdir(parents=True, exist_ok=True)
    path = home.data / "evolve.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise Unavailable(f"another evolve is running in this home (pid {holder})",
                              hint="wait for it to finish; cycles never run side by side") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock, as does the process dying


def rejected(home: Home) -> dict[str, dict]:
    folder = home.generations / REJECTED
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("gen-*.json"))}


def _mark_rejected(home: Home, gid: str, record: dict) -> None:
    folder = home.generations / REJECTED
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{gid}.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, folder / f"{gid}.json")


def _clean_staging(home: Home) -> None:
    """Adapters being trained when a cycle was killed (their pid is gone)."""
    for path in home.data.glob(".staged-adapter-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def evolve(soul, dry_run: bool = False, remove_rejected: bool = False, include_learned: bool = False,
           progress=None, on_stage=None) -> dict:
    """One cycle; returns its record: status (accepted | rejected | nothing-new | plan), buffer,
    adapter, generation, drift, probe loss, absorption, failures and timings."""
    from soulctl.evolve import resonate
    from soulctl.generations import current

    home, store = soul.home, soul.store
    stage = on_stage or (lambda name: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def timed(name, fn):
        stage(name)
        t = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - t, 3)
        return value

    res_recipe = soul.recipe("resonate")
    with cycle_lock(home):
        parent = current(home)
        record: dict = {"status": None, "parent": parent, "buffer": None, "adapter": None,
                        "generation": None, "timings": timings}
        if dry_run:
            pending, _ = store.unmarked("novelty", "soul")
            record.update(status="plan", unscored=len(pending), plan=_plan(soul, include_learned))
            return record
        _clean_staging(home)
        record["scored"] = timed("score", lambda: resonate.score(store, res_recipe, progress=progress))["scored"]
        try:
            buffer = timed("buffer", lambda: resonate.build_buffer(home, store, res_recipe,
                                                                     include_learned=include_learned))
        except InvalidInput as exc:
            return _finish(soul, record, "nothing-new", exc.message, started)
        record["buffer"] = buffer["id"]
        record["examples"] = buffer["examples"]
        if buffer["examples"] < res_recipe.min_examples:
            return _finish(soul, record, "nothing-new", f"{buffer['examples']} new moments, fewer than the "
                           f"recipe's min_examples {res_recipe.min_examples}", started)

        from soulctl.evolve.dream import dream
        from soulctl.evolve.merge import merge

        adapter = timed("dream", lambda: dream(home, buffer["id"], soul.recipe("dream"), progress))
        record["adapter"] = adapter["id"]
        record["loss"] = [adapter["loss_before"], adapter["loss_after"]]
        made = timed("merge", lambda: merge(home, [adapter["id"]], soul.recipe("merge"), progress=progress,
                                            move_current=False))
        gid = made["id"]
        record["generation"] = gid
        report, failures = timed("check", lambda: _check(soul, gid))
        record.update(drift=report["drift"], probe_loss=report["probe_loss"],
                      probe_loss_delta=report["probe_loss_delta"], absorption=report["absorption"],
                      failures=failures)
        if failures:
            if remove_rejected:
                from soulctl.generations.build import make_writable

                make_writable(home.generations / gid)
                shutil.rmtree(home.generations / gid)
                record["removed"] = True
            else:
                _mark_rejected(home, gid, {"id": gid, "parent": parent, "failures": failures,
                                           "drift": report["drift"], "probe_loss_delta": report["probe_loss_delta"]})
            return _finish(soul, record, "rejected", "; ".join(failures), started)
        from soulctl.generations import set_current

        set_current(home, gid)
        return _finish(soul, record, "accepted", f"{gid} passed the anchor check", started)


def _check(soul, gid: str) -> tuple[dict, list[str]]:
    from soulctl.evolve.anchor import check, drift

    limits = soul.recipe("anchor")
    report = drift(soul.home, gid)
    return report, check(report, limits.max_drift, None, limits.max_probe_loss_delta)


def _plan(soul, include_learned: bool) -> dict:
    from soulctl.evolve.resonate import learned_ids

    dream, merge, anchor, res = (soul.recipe(n) for n in ("dream", "merge", "anchor", "resonate"))
    return {"learned_moments": 0 if include_learned else len(learned_ids(soul.home)),
            "threshold": res.threshold, "min_examples": res.min_examples, "rehearsal": res.rehearsal,
            "dream": {"rank": dream.lora.r, "alpha": dream.lora.alpha, "targets": dream.lora.target_modules,
                      "epochs": dream.train.epochs, "learning_rate": dream.train.learning_rate},
            "merge": {"density": merge.layer.density, "weight": merge.layer.weight, "lambda": merge.lam},
            "anchor": {"max_drift": anchor.max_drift, "max_probe_loss_delta": anchor.max_probe_loss_delta}}


def _finish(soul, record: dict, status: str, reason: str, started: float) -> dict:
    """The cycle's record, also written to the log as a system packet."""
    from soulctl.log import NewPacket

    record["status"] = status
    record["reason"] = reason
    record["timings"]["total"] = round(time.perf_counter() - started, 3)
    prose = f"evolve: {status} — {reason}"
    if record.get("generation") and status == "accepted":
        prose = f"evolve: {record['generation']} from {record['parent']} on {record['buffer']} — {reason}"
    packet = NewPacket(prose=prose, role="system", session=SESSION,
                       meta={"evolve": {k: v for k, v in record.items() if k != "plan"}})
    written = soul.store.add([packet], soul.embedder.encode([prose]), soul.embedder.model_id)
    record["packet"] = written[0].id
    return record
