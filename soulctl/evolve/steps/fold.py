"""The merge step: the adapter folded into the next generation, which is not yet current."""

from __future__ import annotations

from soulctl.evolve.steps import Cycle, step


@step("merge")
class Merge:
    weights = True  # the machine's memory: the night's budget is checked before it

    def plan(self, cycle: Cycle) -> dict:
        recipe = cycle.soul.recipe("merge")
        return {"density": recipe.layer.density, "weight": recipe.layer.weight, "lambda": recipe.lam}

    def run(self, cycle: Cycle) -> dict:
        from soulctl.evolve.merge import merge

        soul = cycle.soul
        made = merge(soul, [cycle.adapter["id"]], soul.recipe("merge"), progress=cycle.progress,
                     move_current=False)
        cycle.generation = made["id"]
        return {"generation": made["id"]}


@step("prepare")
class Prepare:
    """What the server will load, made now: the new generation's GGUF when the soul is served
    on llama.cpp (a conversion that would otherwise make the first chat wait)."""

    weights = True

    def plan(self, cycle: Cycle) -> dict:
        return {"gguf": _served_on_llamacpp(cycle.soul)}

    def run(self, cycle: Cycle) -> dict:
        if not _served_on_llamacpp(cycle.soul):
            return {"prepared": None}
        from soulctl.engine import resolve_model
        from soulctl.generations.derived import gguf_for

        soul = cycle.soul
        ref = resolve_model(soul.home, "soul", cycle.generation)
        path = gguf_for(soul.home, ref, soul.config.roles["soul"].quant, cycle.progress)
        return {"prepared": str(path.relative_to(soul.home.root)) if path.is_relative_to(soul.home.root) else str(path)}


def _served_on_llamacpp(soul) -> bool:
    from soulctl.engine import choose_backend, resolve_model

    role = soul.config.roles["soul"]
    if role.url or role.backend not in ("auto", "llamacpp"):
        return False
    ref = resolve_model(soul.home, "soul", role.model)
    return role.backend == "llamacpp" or choose_backend(ref) == "llamacpp"
