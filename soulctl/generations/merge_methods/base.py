"""What every merge method is (mergekit's `merge_methods/base.py` is the model): a name, whether
it folds — makes the new generation from its parent's weights and the night's new layers only, at
a cost flat in the soul's history — and the change from the anchor it gives one tensor.

The merge around it is shared (generations/ties.py): the plan, the adapters read, each layer's
delta ΔW = scale·B·A trimmed to its density, weighted, sign-elected and scaled by λ — the
λ-scaled TIES delta `mixed` a method is handed — and the tensors streamed in and out. A method
decides only what becomes of `mixed`. The invariants every method keeps are checked by
`invariants`: tensors no layer ever touched stay the anchor's bytes; with `reach`, no tensor's
change exceeds reach × ‖anchor tensor‖.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class MergeMethod(Protocol):
    name: str
    folds: bool  # the parent's weights plus the new layers (True), or the anchor plus every layer

    def change(self, recipe, base, prev, mixed):
        """One tensor's change from the anchor: `base` the anchor's, `prev` the parent's (the
        anchor's for a method that does not fold), `mixed` the λ-scaled TIES delta of the layers
        this merge reads (float32 tensors)."""


def within_reach(recipe, base, change):
    """`change` scaled back onto reach × ‖base‖ when it goes further (norm control, as
    continual-merging methods such as OPCM do); as it is without `reach`."""
    if recipe.reach is None:
        return change
    limit = recipe.reach * float(base.norm())
    size = float(change.norm())
    return change * (limit / size) if size > limit > 0 else change


def invariants(anchor_dir: Path, gen_dir: Path, touched: set[str]) -> dict:
    """What a generation keeps of its anchor: how many untouched tensors are the anchor's
    bytes (and how many are not), and the largest ‖W − A‖ / ‖A‖ over the touched ones."""
    import torch
    from safetensors import safe_open

    same = differ = 0
    reach = 0.0
    for path in sorted(anchor_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as a, safe_open(str(gen_dir / path.name), framework="pt") as g:
            for name in a.keys():
                ta, tg = a.get_tensor(name), g.get_tensor(name)
                if name in touched:
                    norm = float(ta.float().norm())
                    if norm:
                        reach = max(reach, float((tg.float() - ta.float()).norm()) / norm)
                elif torch.equal(ta.reshape(-1).view(torch.uint8), tg.reshape(-1).view(torch.uint8)):
                    same += 1
                else:
                    differ += 1
    return {"untouched_identical": same, "untouched_differing": differ, "max_reach": round(reach, 6)}
