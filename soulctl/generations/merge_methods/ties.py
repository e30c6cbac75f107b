"""`method: ties` — every layer re-folded onto the anchor each night by TIES (mergekit's
numbers, entry for entry): exact, but a merge reads, trims and elects over all the soul's layers,
so its time and memory grow with its history."""

from __future__ import annotations

from soulctl.generations.merge_methods.registry import merge_method


@merge_method("ties")
class Ties:
    folds = False

    def change(self, recipe, base, prev, mixed):
        return mixed
