"""`method: magmax` — entry by entry, whichever of the accumulated change and the change with
the night added is larger in magnitude (MagMax, Marczak et al. 2024, on the running sum); a
fold, so flat in history like `fold`, with `reach` as its norm control."""

from __future__ import annotations

from soulctl.generations.merge_methods.base import within_reach
from soulctl.generations.merge_methods.registry import merge_method


@merge_method("magmax")
class MagMax:
    folds = True

    def change(self, recipe, base, prev, mixed):
        import torch

        accumulated = prev - base
        added = accumulated + mixed
        return within_reach(recipe, base, torch.where(added.abs() > accumulated.abs(), added, accumulated))
