"""soulctl merge: fold adapter layers into a new immutable generation."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from soulctl.cli import state

HELP = """Merge adapters into the next generation, anchored to generation 0.

The new generation is a pure function of the anchor, the ordered adapter layers (the
parent's plus these) and recipes/merge.yaml. By default (method: fold) the parent's weights
plus the new layers, each TIES-trimmed alone: density 0.3 and weight 0.5 per new layer,
anchor_weight 0.7 (λ = 0.3), every touched tensor within reach 0.02 of the anchor; method:
ties re-merges every layer onto the anchor. `generations/current` moves only once the new
generation is complete and verified. With no ADAPTER, the newest adapter not yet in the lineage.
"""


def run(
    adapters: Annotated[Optional[List[str]], typer.Argument(help="Adapter ids (ad-…), in order.")] = None,
    density: Annotated[Optional[float], typer.Option(help="Density of the new layers (0, 1].")] = None,
    weight: Annotated[Optional[float], typer.Option(help="Weight of the new layers.")] = None,
    anchor_weight: Annotated[Optional[float], typer.Option(help="Share kept from the anchor [0, 1).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and predicted drift; write nothing.")] = False,
) -> None:
    from soulctl.evolve.merge import merge, newest_unmerged

    soul = state.soul()
    recipe = soul.recipe("merge", {"anchor_weight": anchor_weight,
                                   "layer": {"density": density, "weight": weight}})
    ids = list(adapters or []) or [newest_unmerged(soul.home)]
    with state.out.progress_bars() as progress:
        result = merge(soul, ids, recipe, dry_run=dry_run, progress=progress)
    if dry_run:
        state.out.record(result, id_key=None, human=lambda d: (
            f"plan: {d['parent']} + {len(d['layers'])} layer(s) over {d['tensors']} tensors, "
            f"λ {d['lambda']:.3f}; predicted drift {d['predicted_drift']['overall']:.6f}\n{d['mergekit_yaml']}"))
        return
    state.out.record(result, human=lambda d: (
        f"created {d['id']} from {d['parent']} with {len(d['layers'])} layer(s); drift from "
        f"{d['anchor']}: {d['drift']['overall']:.6f}"))
