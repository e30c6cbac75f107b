"""Folding a night into the soul, at a cost flat in its history (`method: fold` or `magmax`).

A TIES generation is the anchor plus every layer re-folded each night: exact, but each merge
reads, trims and elects over all layers (time and memory linear in the soul's age), and a new
layer's entries that disagree with the accumulated majority are masked out — the older the
soul, the less a night can change it. A fold keeps the accumulated change instead: the parent's
weights minus the anchor's. Each night the new layer enters as TIES makes it alone — trimmed to
its density, weighted, scaled by λ = 1 − anchor_weight — and

- `fold` adds it to the accumulated change (task arithmetic, continued night after night);
- `magmax` keeps, entry by entry, whichever of the accumulated change and the change with the
  night added is larger in magnitude (MagMax, Marczak et al. 2024, on the running sum);

then, with `reach`, a tensor whose accumulated change is over `reach` × the anchor tensor's
norm is scaled back onto that bound (norm control, as continual-merging methods such as OPCM
do). A generation is still a pure function of recorded inputs — its parent's weights (whose
sha256 the parent's lineage holds), the anchor and the new layers — and `gen materialize`
replays the chain from the nearest generation that still has its weights.

Invariants, checked by `invariants`: tensors no layer ever touched are the anchor's bytes; a
night's layer enters at λ of its trimmed delta (the anchor's share is anchor_weight); with
`reach`, no tensor's change exceeds reach × ‖anchor tensor‖.
"""

from __future__ import annotations

from pathlib import Path

from soulctl.errors import InvalidInput


def fold(recipe, base, prev, mixed):
    """The new generation's change from the anchor for one tensor: `base` the anchor's,
    `prev` the parent's, `mixed` the night's λ-scaled TIES delta (float32 tensors)."""
    import torch

    accumulated = prev - base
    added = accumulated + mixed
    if recipe.method == "fold":
        change = added
    elif recipe.method == "magmax":
        change = torch.where(added.abs() > accumulated.abs(), added, accumulated)
    else:
        raise InvalidInput(f"no fold called {recipe.method!r}")
    if recipe.reach is not None:
        limit = recipe.reach * float(base.norm())
        size = float(change.norm())
        if size > limit > 0:
            change = change * (limit / size)
    return change


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
