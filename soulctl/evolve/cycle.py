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
           progress=None, on_stage: Callable[[str], None] | None = None) -> dict:
    """One cycle; returns its record: status (accepted | rejected | nothing-new | plan), buffer,
    adapter, generation, drift, probe loss, absorption, failures and timings. A failed step
    raises (its own SoulError, or StepFailed) after the record is logged."""
    from soulctl.generations import current

    home = soul.home
    steps = steps_named(soul.recipe("evolve").steps)
    with cycle_lock(home):
        cycle = Cycle(soul, current(home), include_learned, remove_rejected, progress)
        record: dict = {"status": None, "parent": cycle.parent, "buffer": None, "adapter": None,
                        "generation": None, "steps": [s.name for s in steps], "timings": {}}
        if dry_run:
            plan = {s.name: s.plan(cycle) for s in steps}
            record.update(status="plan", plan=plan, unscored=plan.get("score", {}).get("unscored"))
            return record
        _clean_staging(home)
        started = time.perf_counter()
        for s in steps:
            (on_stage or (lambda name: None))(s.name)
            t = time.perf_counter()

            def took() -> None:
                record["timings"][s.name] = round(time.perf_counter() - t, 3)

            try:
                record.update(s.run(cycle))
            except Stop as stop:
                took()
                record.update(stop.record)
                return _finish(soul, record, stop.status, stop.reason, started)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                took()
                failed = exc if isinstance(exc, SoulError) else StepFailed(
                    f"{s.name} failed: {type(exc).__name__}: {exc}",
                    hint="current did not move; rerun with -v for the traceback")
                record["step"] = s.name
                _finish(soul, record, "failed", f"{s.name} failed: {failed.message}", started)
                raise failed from exc
            took()
        if cycle.generation is None:
            return _finish(soul, record, "nothing-new", "no step made a generation", started)
        from soulctl.generations import set_current

        set_current(home, cycle.generation)
        return _finish(soul, record, "accepted", f"{cycle.generation} passed the anchor check", started)


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
