"""A generation as a pure function of its lineage: the anchor plus its adapter layers, folded
by TIES (DESIGN §6), or — O(1) in history — its parent's weights plus the night's layer; what a
method makes of the night's TIES delta is its own (generations/merge_methods/). `merge` (evolve/) plans a new generation and `gen
materialize` rebuilds one from its lineage; both compute it here.

For each tensor an adapter touches, every layer's delta ΔW = scale·B·A is trimmed to its
density by magnitude, weighted, signs are elected by the weighted sum, agreeing entries are
summed (divided by the agreeing weights only with `normalize`), scaled by λ = 1 − anchor_weight
and added to the anchor — mergekit's TIES, entry for entry. The output streams tensor by
tensor into a copy of the anchor's safetensors layout: tensors no adapter touches are the
anchor's bytes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from soulctl.budget.modelfiles import safetensors_layout
from soulctl.errors import CheckFailed, InvalidInput, NotFound
from soulctl.generations.adapters import AdapterLayer, load_adapter
from soulctl.generations.weights import drift_from_sums, module_type, sq_norm
from soulctl.home import Home
from soulctl.generations.merge_methods.registry import folds, method
from soulctl.home.recipe_schemas import MergeRecipe
from soulctl.progress import progress_task


@dataclass
class Layer:
    """One adapter layer of a generation, as recorded in lineage.json."""

    adapter: str
    sha256: str
    density: float
    weight: float
    buffer_sha256: str | None = None
    log_ids: list[str] = field(default_factory=list)
    base_generation: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def ties_delta(deltas, densities, weights, normalize: bool, lam: float):
    """mergekit's TIES on a stack of per-layer deltas (float32 torch tensors)."""
    import torch

    trimmed = torch.stack([trim(d, density) for d, density in zip(deltas, densities)])
    w = torch.tensor(weights, dtype=trimmed.dtype).view(-1, *([1] * (trimmed.dim() - 1)))
    trimmed.mul_(w)
    majority = (trimmed.sum(dim=0) >= 0).to(trimmed.dtype) * 2 - 1
    mask = trimmed.sign() == majority
    mixed = (trimmed * mask).sum(dim=0)
    if normalize:
        divisor = (w * mask).sum(dim=0)
        divisor[divisor == 0] = 1
        mixed /= divisor
    if lam != 1:
        mixed *= lam
    return mixed


def trim(delta, density: float):
    """Keep the `density` share of entries with the largest magnitude (at least one)."""
    import torch

    if density >= 1:
        return delta.clone()
    flat = delta.abs().reshape(-1).float()
    n = flat.numel()
    k = max(1, int(density * n))
    if k >= n:
        return delta.clone()
    # the set mergekit's full argsort selects, found by selection (O(n), ~7× faster here):
    # everything above the k-th largest magnitude, then as many entries equal to it as needed
    kth = torch.kthvalue(flat, n - k + 1).values
    mask = flat > kth
    need = k - int(mask.sum())
    if need > 0:
        mask[torch.nonzero(flat == kth).reshape(-1)[:need]] = True
    return delta * mask.reshape_as(delta).to(delta.dtype)


@dataclass
class MergePlan:
    parent: str | None
    anchor: str
    layers: list[Layer]
    recipe: MergeRecipe
    targets: dict[str, list[int]]  # tensor name → indexes of the layers this merge folds in
    mergekit_yaml: str
    new_from: int = 0  # the layers before this index are the parent's (a fold reads its weights)

    def as_dict(self) -> dict:
        return {"parent": self.parent, "anchor": self.anchor,
                "layers": [l.as_dict() for l in self.layers], "recipe": self.recipe.model_dump(),
                "lambda": self.recipe.lam, "tensors": len(self.targets),
                "mergekit_yaml": self.mergekit_yaml}


def resolve_plan(home: Home, parent: str | None, anchor: str, layers: list[Layer],
                 recipe: MergeRecipe, new_from: int = 0) -> tuple[MergePlan, list[AdapterLayer | None]]:
    """The plan and the adapters it reads: every layer for TIES; for a fold only the layers
    from `new_from` on (the parent's weights hold the others)."""
    anchor_dir = home.generations / anchor
    shapes = anchor_shapes(anchor_dir)
    first = new_from if folds(recipe) else 0
    loaded = [None] * first + [load_adapter(home, layer.adapter, expect_sha=layer.sha256) for layer in layers[first:]]
    targets: dict[str, list[int]] = {}
    for i, adapter in enumerate(loaded):
        if adapter is None:
            continue
        for name, (a_shape, b_shape) in adapter.shapes.items():
            if name not in shapes:
                raise InvalidInput(f"adapter {adapter.id} was trained on another architecture: "
                                   f"{anchor} has no tensor {name}",
                                   hint="dream a new adapter on this soul's generations")
            want = shapes[name]
            if (b_shape[0], a_shape[1]) != tuple(want):
                raise InvalidInput(f"adapter {adapter.id} was trained on another architecture: "
                                   f"{name} is {tuple(want)} in {anchor}, "
                                   f"the adapter makes {(b_shape[0], a_shape[1])}")
            targets.setdefault(name, []).append(i)
    base_dir = home.generations / parent if folds(recipe) and parent else anchor_dir
    plan = MergePlan(parent, anchor, layers, recipe, targets,
                     mergekit_yaml(base_dir, [home.adapters / l.adapter for l in layers[first:]], layers[first:],
                                   recipe), first)
    return plan, loaded


def anchor_shapes(anchor_dir: Path) -> dict[str, list[int]]:
    files = sorted(anchor_dir.glob("*.safetensors"))
    if not files:
        raise NotFound(f"the anchor {anchor_dir.name} has no weights",
                       hint=f"rebuild them: soulctl gen materialize {anchor_dir.name}")
    shapes = {}
    for f in files:
        header, _ = safetensors_layout(f)
        header.pop("__metadata__", None)
        shapes.update({k: v["shape"] for k, v in header.items()})
    return shapes


def mergekit_yaml(anchor_dir: Path, adapter_dirs: list[Path], layers: list[Layer],
                  recipe: MergeRecipe) -> str:
    import yaml

    doc = {
        "merge_method": "ties",
        "base_model": str(anchor_dir),
        "models": [{"model": f"{anchor_dir}+{d}", "parameters": {"density": l.density, "weight": l.weight}}
                   for d, l in zip(adapter_dirs, layers)],
        "parameters": {"normalize": recipe.normalize, "lambda": round(recipe.lam, 10), "int8_mask": False},
        "dtype": "float32",  # soulctl computes in float32 and stores in the anchor's dtype
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_merged(plan: MergePlan, adapters: list, anchor_dir: Path, out: Path, progress=None,
                 parent_dir: Path | None = None) -> dict:
    """Stream the merged model into `out`; return the drift from the anchor measured on the
    way. A fold reads its parent's weights from `parent_dir` (same layout as the anchor's).
    With `out` None nothing is written (the drift a merge would cause)."""
    if folds(plan.recipe) and parent_dir is None:
        raise InvalidInput(f"a {plan.recipe.method} merge reads its parent's weights: none given")
    for path in sorted(anchor_dir.iterdir()) if out is not None else ():
        if path.is_file() and path.suffix != ".safetensors" and path.name != "lineage.json":
            shutil.copyfile(path, out / path.name)
    sums: dict[str, list[float]] = {}  # module type → [Σ‖ΔW‖², Σ‖W‖²]
    files = sorted(anchor_dir.glob("*.safetensors"))
    total = sum(len(safetensors_layout(f)[0]) - 1 for f in files)
    with progress_task(progress, "Merging tensors", total) as task:
        for src in files:
            header, data_start = safetensors_layout(src)
            order = sorted((k for k in header if k != "__metadata__"),
                           key=lambda k: header[k]["data_offsets"][0])
            prev_file = open(parent_dir / src.name, "rb") if parent_dir is not None else None
            try:
                with open(src, "rb") as fin, (open(out / src.name, "wb") if out is not None else _Discard()) as fout:
                    fout.write(fin.read(data_start))  # same header: same layout as the anchor
                    for name in order:
                        begin, end = header[name]["data_offsets"]
                        fin.seek(data_start + begin)
                        raw = fin.read(end - begin)  # the bytes just read: no mapping stays resident
                        prev = raw
                        if prev_file is not None:
                            prev_file.seek(data_start + begin)
                            prev = prev_file.read(end - begin)
                        fout.write(_merged_bytes(plan, adapters, name, header[name], raw, prev, sums))
                        task.advance(1)
            finally:
                if prev_file is not None:
                    prev_file.close()
    return drift_from_sums(sums)


class _Discard:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass


DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def _tensor(raw: bytes, info: dict):
    import torch

    return torch.frombuffer(bytearray(raw), dtype=getattr(torch, DTYPES[info["dtype"]])).reshape(info["shape"])


def _merged_bytes(plan: MergePlan, adapters: list, name: str, info: dict, raw: bytes, prev: bytes,
                  sums: dict) -> bytes:
    """One tensor of the new generation (`raw` the anchor's bytes, `prev` the parent's), its
    drift from the anchor added to `sums`. Memory holds a few copies of one tensor."""
    import torch

    acc = sums.setdefault(module_type(name), [0.0, 0.0])
    if name not in plan.targets and prev == raw:  # untouched: the anchor's bytes
        acc[1] += sq_norm(raw, info["dtype"])
        return raw
    base = _tensor(raw, info)
    if name in plan.targets:
        idx = plan.targets[name]
        mixed = ties_delta([adapters[i].delta(name) for i in idx], [plan.layers[i].density for i in idx],
                           [plan.layers[i].weight for i in idx], plan.recipe.normalize, plan.recipe.lam)
        change = method(plan.recipe.method).change(plan.recipe, base.float(), _tensor(prev, info).float(), mixed)
        merged = (base.float() + change).to(base.dtype)
    else:  # a fold: a tensor an earlier night changed and this one does not
        merged = _tensor(prev, info)
    if not torch.isfinite(merged).all():
        raise CheckFailed(f"merge produced NaN/Inf in {name}; nothing was written",
                          hint="check the adapters with `soulctl gen verify`")
    diff = merged.float() - base.float()
    acc[0] += float((diff * diff).sum())
    acc[1] += float((base.float() ** 2).sum())
    out = merged.contiguous().view(torch.uint8).numpy().tobytes()
    assert len(out) == len(raw)
    return out


def predict_drift(plan: MergePlan, adapters: list, home: Home) -> dict:
    """The drift the merge would cause, computed as the merge does, writing nothing."""
    parent_dir = home.generations / plan.parent if folds(plan.recipe) and plan.parent else None
    return write_merged(plan, adapters, home.generations / plan.anchor, None, parent_dir=parent_dir)
