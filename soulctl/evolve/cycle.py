"""evolve: one cycle of the nightly habit as one safe step.

The steps recipes/evolve.yaml names run in order (by default: score → buffer → dream → merge
→ check; see evolve/steps/); `current` moves to the new generation only after all of them
passed. A step may end the cycle early — too few new moments (`nothing-new`), a generation past
the anchor's limits (`rejected`: kept and marked, or removed) — and any failure of a step ends
it as `failed`, naming the step. One cycle at a time per home (a lock); a cycle killed at any
point leaves `current` on a verified generation, and its leftovers (staged adapters, a
generation never made current) are harmless and cleaned. Every cycle ends in a system packet
in the log: what it did, or why not.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable

from soulctl.errors import EXIT_STEP_FAILED, SoulError, Unavailable
from soulctl.evolve.steps import Cycle, Stop, steps_named
from soulctl.evolve.watch import Watch
from soulctl.home import Home
from soulctl.processes import alive

if TYPE_CHECKING:
    from soulctl.log import Packet
    from soulctl.soul import Soul

SESSION = "evolve"  # the log session of every cycle's record
REJECTED = "rejected"  # generations/rejected/<gid>.json: why a generation was not kept


class StepFailed(SoulError):
    """A step of the cycle failed (its record is logged; `current` did not move)."""

    exit_code = EXIT_STEP_FAILED


@contextmanager
def cycle_lock(home: Home):
    """Exclusive for the whole cycle; a second `evolve` is refused at once, not queued."""
    home.data.mkdir(parents=True, exist_ok=True)
    path = home.data / "evolve.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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


def mark_rejected(home: Home, gid: str, record: dict) -> None:
    folder = home.generations / REJECTED
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{gid}.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, folder / f"{gid}.json")


def last_cycle(store) -> Packet | None:
    """The newest cycle's record in the log (its system packet), if any cycle has run."""
    from soulctl.log import Filters

    return next(iter(store.list(Filters(role="system", session=SESSION), limit=1)), None)


def _clean_staging(home: Home) -> None:
    """Adapters being trained when a cycle was killed (their pid is gone)."""
    for path in home.data.glob(".staged-adapter-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def evolve(soul: Soul, dry_run: bool = False, remove_rejected: bool = False, include_learned: bool = False,
           progress=None, say: Callable[[str], None] | None = None,
           heartbeat: Callable[[str], None] | None = None) -> dict:
    """One cycle; returns its record: status (accepted | rejected | nothing-new | plan), buffer,
    adapter, generation, drift, probe loss, absorption, failures, timings, and what a running
    server did (released for the night, serving what). A failed step raises (its own SoulError,
    or StepFailed) after the record is logged. `say` gets one line per stage, with its time;
    `heartbeat` a line at least every HEARTBEAT_S seconds while the cycle runs (evolve/watch.py)."""
    from soulctl.evolve.buffer import sizing_examples
    from soulctl.generations import current

    home = soul.home
    steps = steps_named(soul.recipe("evolve").steps)
    with cycle_lock(home):
        sizing = sizing_examples(home, soul.store, soul.recipe("resonate"), include_learned)
        if dry_run:
            cycle = Cycle(soul, current(home), include_learned, remove_rejected, progress, sizing=sizing)
            return _plan(soul, cycle, steps, _record(cycle, steps))
        with Watch(home, [s.name for s in steps], heartbeat) as watch:
            cycle = Cycle(soul, current(home), include_learned, remove_rejected, watch.progress(progress),
                          sizing=sizing)
            return _cycle(soul, cycle, steps, watch, say or (lambda line: None))


def _record(cycle: Cycle, steps) -> dict:
    return {"status": None, "parent": cycle.parent, "buffer": None, "adapter": None,
            "generation": None, "steps": [s.name for s in steps], "timings": {}}


def _cycle(soul: Soul, cycle: Cycle, steps, watch: Watch, say: Callable[[str], None]) -> dict:
    """The cycle proper, under its lock and watched."""
    from soulctl.evolve.night import Night

    home, recipe = soul.home, soul.recipe("evolve")
    record = _record(cycle, steps)
    _clean_staging(home)
    started = time.perf_counter()
    night = Night(soul, recipe.lease_s, say)
    failed: SoulError | None = None
    cause: BaseException | None = None
    try:
        status, reason = _run(cycle, steps, record, night, say, watch)
        if status == "accepted":
            from soulctl.generations import set_current

            set_current(home, cycle.generation)
    except KeyboardInterrupt:
        night.close()
        raise
    except Exception as exc:
        cause = exc
        failed = exc if isinstance(exc, SoulError) else StepFailed(
            f"{record.get('step')} failed: {type(exc).__name__}: {exc}",
            hint="current did not move; rerun with -v for the traceback")
        status, reason = "failed", f"{record.get('step') or 'the cycle'} failed: {failed.message}"
    served = night.close()  # the server serves `current`: restored after a release, or following it
    if served is not None:
        record["served"] = served.get("generation")
    record = _finish(soul, record, status, reason, started)
    say(f"{status}: {reason}")
    if failed is not None:
        raise failed from (None if failed is cause else cause)
    return record


def _plan(soul: Soul, cycle: Cycle, steps, record: dict) -> dict:
    """The dry run: each step's plan, and the night's (whether a running server must release)."""
    from soulctl.evolve.night import phases

    plan = {s.name: s.plan(cycle) for s in steps}
    night = phases(soul, cycle.sizing)["night"]
    plan["night"] = {"release": night["release"], "fits": night["fits"]}
    record.update(status="plan", plan=plan, unscored=plan.get("score", {}).get("unscored"))
    return record


def _run(cycle: Cycle, steps, record: dict, night, say, watch: Watch) -> tuple[str, str]:
    """The steps in order; (status, reason) of how the cycle ended. Before the first step that
    loads weights, the night's budget is checked (and a running server released if need be)."""
    for s in steps:
        watch.stage(s.name)
        if getattr(s, "weights", False) and "night" not in record:
            record["night"] = night.enter(cycle.sizing)
        say(f"{s.name} …")
        t = time.perf_counter()
        record["step"] = s.name
        try:
            record.update(s.run(cycle))
        except Stop as stop:
            record.update(stop.record)
            record.pop("step", None)
            return stop.status, stop.reason
        finally:
            record["timings"][s.name] = round(time.perf_counter() - t, 3)
            say(f"{s.name} done in {record['timings'][s.name]:.1f} s")
    record.pop("step", None)
    if cycle.generation is None:
        return "nothing-new", "no step made a generation"
    return "accepted", f"{cycle.generation} passed the anchor check"


def _finish(soul: Soul, record: dict, status: str, reason: str, started: float) -> dict:
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
