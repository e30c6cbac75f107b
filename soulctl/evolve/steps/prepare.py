"""The prepare step: what the server will load of the new generation, made now (the GGUF when
the soul is served on llama.cpp: a conversion that would otherwise make the first chat wait).
Which backend serves it, and what it prepares, is the engine factory's to say."""

from __future__ import annotations

from soulctl.evolve.steps import Cycle, step


@step("prepare")
class Prepare:
    weights = True

    def plan(self, cycle: Cycle) -> dict:
        from soulctl.engine import backend_for, prepares

        soul = cycle.soul
        return {"backend": backend_for(soul.home, "soul"), "prepares": prepares(soul.home, "soul")}

    def run(self, cycle: Cycle) -> dict:
        from soulctl.engine import prepare

        soul = cycle.soul
        path = prepare(soul.home, "soul", cycle.generation, cycle.progress)
        if path is None:
            return {"prepared": None}
        return {"prepared": str(path.relative_to(soul.home.root)) if path.is_relative_to(soul.home.root) else str(path)}
