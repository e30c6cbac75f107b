"""The trainer step: an adapter dreamt on the cycle's buffer by the recipe's trainer
(evolve/trainers/: a LoRA on peft or on mlx-lm)."""

from __future__ import annotations

from soulctl.evolve.steps import Cycle, step


@step("dream")
class Dream:
    weights = True  # the machine's memory: the night's budget is checked before it

    def plan(self, cycle: Cycle) -> dict:
        from soulctl.evolve.trainers import pick

        recipe = cycle.soul.recipe("dream")
        trainer = pick(recipe, check_installed=False)
        trainer.check(recipe)
        return {"trainer": trainer.name, "available": trainer.available(), "rank": recipe.lora.r, "alpha": recipe.lora.alpha, "targets": recipe.lora.target_modules,
                "epochs": recipe.train.epochs, "learning_rate": recipe.train.learning_rate,
                "device": recipe.device}

    def run(self, cycle: Cycle) -> dict:
        from soulctl.evolve.dream import dream

        soul = cycle.soul
        cycle.adapter = dream(soul, cycle.buffer["id"], soul.recipe("dream"), cycle.progress)
        return {"adapter": cycle.adapter["id"],
                "loss": [cycle.adapter["loss_before"], cycle.adapter["loss_after"]]}
