"""The server follows `current`, and lends the machine to the night.

**Following.** When `generations/current` moves (`gen use`, `evolve`), the server prepares the
new generation — its GGUF conversion and load — beside the old one, off the engine's worker,
while turns go on; then it swaps the engines as one job on the engine's worker, so every turn
runs whole on the generation it started on and the next runs on the new one. It notices by
being told on its control channel (control.py), on SIGHUP, or by a look at the link every
POLL_S seconds. Where two copies of the model do not fit the machine, the swap frees the old
one first (the turns queued meanwhile wait; none fails). Each switch is a system packet.

**Releasing.** `evolve` may ask the server to release the soul's weights for the night (when
the dream does not fit beside them). The release is a job on the engine's worker too: turns
admitted before it finish first. While released, turns are answered by the majordomo when
soul.yaml has one (the response says so), else refused with 503 and Retry-After. A lease guards
both sides: the holder renews it; when it lapses (the holder died) the server loads `current`
on its own; `restore` ends it early.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from soulctl.serve.context import Served

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often the link is looked at, beside the control channel and SIGHUP
MAX_LEASE_S = 6 * 3600  # a release lapses at most this long after its last renewal
SESSION = "serve"  # the log session of the server's own packets (switches, releases)


def _number(request: dict, key: str, default: float, low: float, high: float) -> float:
    """A number of a control request, finite and within [low, high], else ValueError (the
    channel answers it as an error; a lease of NaN would never lapse)."""
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"`{key}` must be a number from {low:g} to {high:g}")
    return float(value)


class Follower:
    def __init__(self, served: Served, say: Callable[[str], None] | None = None):
        self.served, self.home = served, served.soul.home
        self.say = say or log.info
        self._lock = threading.RLock()  # one switch, release or restore at a time
        self._stop = threading.Event()
        self.lease: dict | None = None  # while released: holder, reason, until
        self.switches = 0
        # a model served elsewhere (backend: openai, a model we cannot name) is that server's
        # to change: following `current` would reload the same thing over and over
        self.follows = served.generation is not None

    # -- the watcher ------------------------------------------------------------------------
    def start(self) -> None:
        threading.Thread(target=self._watch, name="soulctl-follow", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        from soulctl.generations import current

        while not self._stop.wait(POLL_S):
            try:
                if self.lease is not None:
                    if time.time() > self.lease["until"]:
                        self.say(f"the lease of {self.lease['reason']} (pid {self.lease['holder']}) lapsed: "
                                 "loading the soul again")
                        self.restore(lapsed=True)
                elif self.follows and current(self.home) not in (None, self.served.generation):
                    self.follow()
            except Exception as exc:  # keep watching; the next look tries again
                log.warning("following current failed: %s", exc)

    # -- the control channel -----------------------------------------------------------------
    def handle(self, request: dict) -> dict:
        op = request.get("op")
        if op == "status":
            return {"ok": True, **self.status()}
        if op == "follow":
            return {"ok": True, **self.follow()}
        if op in ("release", "renew", "restore"):
            holder = int(_number(request, "holder", 0, 0, 2**31))
            if op == "restore":
                return {"ok": True, **self.restore(holder=holder)}
            lease = _number(request, "lease", 60, 1, MAX_LEASE_S)
            if op == "renew":
                return {"ok": self.renew(holder, lease)}
            reason = request.get("reason", "a release")
            if not isinstance(reason, str) or len(reason) > 200:
                raise ValueError("`reason` must be a text of at most 200 characters")
            return {"ok": True, **self.release(holder, lease, reason)}
        return {"ok": False, "error": f"unknown op {str(op)[:40]!r}"}

    def status(self) -> dict:
        from soulctl.generations import current

        served = self.served
        return {"generation": served.generation, "current": current(self.home),
                "released": self.lease is not None, "lease": self.lease, "switches": self.switches,
                "url": served.url, "queued": served.slot.waiting, "sessions": served.sessions.pressure()}

    # -- following current ----------------------------------------------------------------------
    def follow(self) -> dict:
        """Serve `current` from now on: prepared aside, swapped between turns."""
        from soulctl.generations import current

        with self._lock:
            target, was = current(self.home), self.served.generation
            if not self.follows:
                return {"generation": was, "switched": False, "released": False,
                        "why": "the soul's model is served elsewhere (its server chooses what it serves)"}
            if self.lease is not None or target in (None, was):
                return {"generation": was, "switched": False, "released": self.lease is not None}
            started = time.perf_counter()
            self.say(f"current moved to {target}: preparing it beside {was}")
            aside = self.served.room_for_two()
            new = self.served.open_soul_engine() if aside else None
            prepared = time.perf_counter() - started
            self.served.slot.control(lambda: self.served.swap_engine(new)).result()
            self._record(f"serve: switched from {was} to {target}", kind="switch", previous=was, generation=target,
                         prepared_s=round(prepared, 3), aside=aside)
            self.switches += 1
            self.say(f"serving {target} (was {was}; prepared in {prepared:.1f} s"
                     + ("" if aside else ", the old model freed first: two do not fit") + ")")
            return {"generation": target, "switched": True, "previous": was, "prepared_s": round(prepared, 3)}

    # -- the night's lease -------------------------------------------------------------------------
    def release(self, holder: int, lease: float, reason: str) -> dict:
        with self._lock:
            if self.lease is None:
                was = self.served.generation
                self.served.slot.control(self.served.release_engine).result()
                self._record(f"serve: released the soul's weights ({was}) for {reason}, pid {holder}",
                             kind="release", generation=was, holder=holder, lease_s=lease)
                self.say(f"released {was} for {reason} (pid {holder}); "
                         + ("the majordomo answers meanwhile" if self.served.has_majordomo
                            else "turns are refused with 503 meanwhile"))
            self.lease = {"holder": holder, "reason": reason, "until": time.time() + lease}
            return {"released": True, "majordomo": self.served.has_majordomo}

    def renew(self, holder: int, lease: float) -> bool:
        with self._lock:
            if self.lease is None or self.lease["holder"] != holder:
                return False
            self.lease["until"] = time.time() + lease
            return True

    def restore(self, holder: int = 0, lapsed: bool = False) -> dict:
        """Load `current` (new or unchanged) and end the release."""
        from soulctl.generations import current

        with self._lock:
            if self.lease is None:
                return {"restored": False, "generation": self.served.generation}
            reason = self.lease["reason"]
            started = time.perf_counter()
            engine = self.served.open_soul_engine()
            self.served.slot.control(lambda: self.served.swap_engine(engine)).result()
            self.lease = None
            target = current(self.home)
            self._record(f"serve: {'the lease lapsed; ' if lapsed else ''}serving {target} again after {reason}",
                         kind="restore", generation=target, lapsed=lapsed, holder=holder,
                         load_s=round(time.perf_counter() - started, 3))
            self.say(f"serving {target} again ({'lease lapsed' if lapsed else 'restored'} after {reason})")
            return {"restored": True, "generation": target, "lapsed": lapsed}

    def retry_after(self) -> int:
        return max(1, int(self.lease["until"] - time.time())) if self.lease else 5

    def _record(self, prose: str, **meta) -> None:
        from soulctl.log import NewPacket

        soul = self.served.soul
        packet = NewPacket(prose=prose, role="system", session=SESSION, generation=meta.get("generation"),
                           meta={"serve": meta})
        soul.store.add([packet], soul.embedder.encode([prose]), soul.embedder.model_id)
