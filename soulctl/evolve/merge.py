"""merge: fold adapter layers into the next immutable generation (DESIGN §6). The fold itself —
a generation as a pure function of its lineage — is generations/ties.py; here the new
generation is planned (its parent, its new layers, the recipe), built, verified and, unless
the caller decides later (evolve), made current.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from soulctl import __version__
from soulctl.errors import CheckFailed, InvalidInput, NotFound
from soulctl.generations import (
    build_generation,
    current,
    dropped_files,
    generation_ids,
    next_id,
    now_iso,
    read_lineage,
    set_current,
    verify,
)
from soulctl.generations.adapters import AdapterLayer, load_adapter
from soulctl.generations.merge_methods.registry import folds, method
from soulctl.generations.ties import Layer, MergePlan, predict_drift, resolve_plan, write_merged
from soulctl.home.recipe_schemas import MergeRecipe
from soulctl.home import Home

if TYPE_CHECKING:
    from pathlib import Path

    from soulctl.soul import Soul

log = logging.getLogger(__name__)


def check_recipe(recipe: MergeRecipe, layers: list[Layer]) -> None:
    method(recipe.method)  # an unknown method named now, before any adapter is read
    if recipe.normalize and len(layers) == 1 and layers[0].weight != 1:
        raise InvalidInput(
            f"normalize: true with a single adapter layer cancels its weight ({layers[0].weight})",
            hint="set normalize: false in recipes/merge.yaml (the default), or weight: 1.0")


def plan_merge(home: Home, adapter_ids: list[str], recipe: MergeRecipe,
               density: float | None = None, weight: float | None = None,
               parent: str | None = None) -> tuple[MergePlan, list[AdapterLayer]]:
    """The merge of `adapter_ids` onto `parent` (default: current). `density` and `weight`
    override the recipe's for the new layers, validated by the recipe's own schema."""
    from soulctl.home.recipe_schemas import with_overrides

    if density is not None or weight is not None:
        layer = {k: v for k, v in (("density", density), ("weight", weight)) if v is not None}
        recipe = with_overrides(recipe, {"layer": layer})
    ids = generation_ids(home)
    if not ids:
        raise NotFound("this soul home has no generations", hint="run `soulctl init`")
    anchor = ids[0]
    parent = parent or current(home) or ids[-1]
    parent_layers = [Layer(**l) for l in read_lineage(home, parent).layers]
    if not adapter_ids:
        raise InvalidInput("no adapter to merge", hint="train one with `soulctl dream`, or name it")
    new_layers = []
    present = {l.adapter for l in parent_layers}
    for adapter_id in adapter_ids:
        adapter = load_adapter(home, adapter_id)
        if adapter.id in present:
            raise InvalidInput(f"adapter {adapter.id} is already a layer of {parent}",
                               hint="a layer is folded in once; dream a new adapter to grow further")
        present.add(adapter.id)
        new_layers.append(Layer(adapter.id, adapter.sha256, recipe.layer.density, recipe.layer.weight,
                                adapter.meta.get("buffer_sha256"), adapter.meta.get("log_ids", []),
                                adapter.meta.get("base_generation")))
    layers = parent_layers + new_layers
    check_recipe(recipe, layers)
    if folds(recipe) and dropped_files(home, parent):
        raise NotFound(f"{parent} has no weights (dropped by gc): a {recipe.method} merge starts from them",
                       hint=f"soulctl gen materialize {parent}")
    return resolve_plan(home, parent, anchor, layers, recipe, new_from=len(parent_layers))


def newest_unmerged(home: Home) -> str:
    """The adapter trained last that the current generation does not hold yet (`soulctl merge`
    with no ADAPTER)."""
    merged = set(read_lineage(home, current(home)).adapters)
    candidates = sorted(home.adapters.glob("ad-*/meta.json"), key=lambda p: p.stat().st_mtime) \
        if home.adapters.is_dir() else []
    for meta in reversed(candidates):
        if meta.parent.name not in merged:
            return meta.parent.name
    raise NotFound("no adapter to merge", hint="train one with `soulctl dream`")


def merge(soul: Soul, adapter_ids: list[str], recipe: MergeRecipe, density: float | None = None,
          weight: float | None = None, dry_run: bool = False, progress=None,
          move_current: bool = True) -> dict:
    """The next generation from the current one plus `adapter_ids`; `current` moves to it once
    it verifies (`move_current=False`: the caller decides, as `evolve` does after its check)."""
    home = soul.home
    plan, adapters = plan_merge(home, adapter_ids, recipe, density, weight)
    if dry_run:
        return {"dry_run": True, **plan.as_dict(), "predicted_drift": predict_drift(plan, adapters, home)}
    gid = next_id(home)
    anchor_dir = home.generations / plan.anchor
    lineage = {
        "parent": plan.parent, "anchor": plan.anchor, "created_at": now_iso(),
        "layers": [l.as_dict() for l in plan.layers], "recipe": plan.recipe.model_dump(),
        "lambda": plan.recipe.lam, "mergekit_yaml": plan.mergekit_yaml,
        "tools": _tool_versions(), "source": None, "drift": None,
    }

    def write(tmp: Path) -> None:
        parent_dir = home.generations / plan.parent if folds(plan.recipe) else None
        lineage["drift"] = write_merged(plan, adapters, anchor_dir, tmp, progress, parent_dir)

    build_generation(home, gid, write, lineage, progress)
    result = verify(home, gid)
    if not result.ok:  # never move `current` to a generation that does not verify
        raise CheckFailed(f"{gid} failed verification right after the merge", hint="report this")
    if move_current:
        set_current(home, gid)
    return {"id": gid, **plan.as_dict(), "drift": lineage["drift"]}


def _tool_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"soulctl": __version__}
    for name in ("torch", "safetensors", "peft"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
