"""The merge step: the adapter folded into the next generation, which is not yet current."""

from __future__ import annotations

from soulctl.evolve.steps import Cycle, step


@step("merge")
class Merge:
    weights = True  # the machine's memory: the night's budget is checked before it

    def plan(self, cycle: Cycle) -> dict:
        from soulctl.generations.merge_methods.registry import method

        recipe = cycle.soul.recipe("merge")
        return {"method": method(recipe.method).name, "density": recipe.layer.density, "weight": recipe.layer.weight, "lambda": recipe.lam}

    def run(self, cycle: Cycle) -> dict:
        from soulctl.evolve.merge import merge

        soul = cycle.soul
        made = merge(soul, [cycle.adapter["id"]], soul.recipe("merge"), progress=cycle.progress,
                     move_current=False)
        cycle.generation = made["id"]
        return {"generation": made["id"]}
