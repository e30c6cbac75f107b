"""`method: fold` — a night folded into the soul, at a cost flat in its history.

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
"""

from __future__ import annotations

from soulctl.generations.merge_methods.base import within_reach
from soulctl.generations.merge_methods.registry import merge_method


@merge_method("fold")
class Fold:
    folds = True

    def change(self, recipe, base, prev, mixed):
        return within_reach(recipe, base, prev - base + mixed)
