"""The cycle's first steps: score what is new, then buffer the resonant moments no layer of
the current generation has learned."""

from __future__ import annotations

from soulctl.evolve.steps import Cycle, Stop, step


@step("score")
class Score:
    """Novelty (and the combined resonance) for every reply not scored yet."""

    def plan(self, cycle: Cycle) -> dict:
        pending, _ = cycle.soul.store.unmarked("novelty", "soul")
        return {"unscored": len(pending)}

    def run(self, cycle: Cycle) -> dict:
        from soulctl.evolve import resonate

        soul = cycle.soul
        return {"scored": resonate.score(soul.store, soul.recipe("resonate"), progress=cycle.progress)["scored"]}


@step("buffer")
class Buffer:
    """The training buffer: new resonant moments only; too few of them end the cycle."""

    def plan(self, cycle: Cycle) -> dict:
        from soulctl.evolve.buffer import learned_ids

        from soulctl.evolve.buffer import census, census_line

        recipe = cycle.soul.recipe("resonate")
        counts = census(cycle.soul.home, cycle.soul.store, recipe.threshold, include_learned=cycle.include_learned)
        return {"threshold": recipe.threshold, "min_examples": recipe.min_examples,
                "rehearsal": recipe.rehearsal,
                "learned_moments": 0 if cycle.include_learned else len(learned_ids(cycle.soul.home)),
                "census": counts, "moments": census_line(counts)}

    def run(self, cycle: Cycle) -> dict:
        from soulctl.evolve.buffer import NothingNew, build_buffer, census_line

        soul = cycle.soul
        recipe = soul.recipe("resonate")
        try:
            buffer = build_buffer(soul.home, soul.store, recipe, include_learned=cycle.include_learned)
        except NothingNew as exc:
            raise Stop("nothing-new", exc.message) from None
        cycle.buffer = buffer
        record = {"buffer": buffer["id"], "examples": buffer["examples"]}
        if buffer["examples"] < recipe.min_examples:
            raise Stop("nothing-new", f"{buffer['examples']} new moments, fewer than the recipe's "
                                      f"min_examples {recipe.min_examples} ({census_line(buffer['census'])})", record)
        return record
