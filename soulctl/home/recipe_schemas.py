"""Recipes (recipes/*.yaml): the schemas of every recipe, with defaults; values resolve
flag → file → default. They live with the home (the floor under everything that reads them),
so the soul's handle validates a recipe without importing the code that uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from soulctl.errors import ConfigError
from soulctl.home import Home
from soulctl.home.config import validate_mapping


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LayerDefaults(_Strict):
    density: float = Field(0.3, gt=0, le=1)
    weight: float = Field(0.5, gt=0)


class MergeRecipe(_Strict):
    # the merge method, by the name its module registers (generations/merge_methods/): fold (the
    # shipped default, chosen over 30 nights) and magmax keep the parent's weights plus the new
    # layers (cost flat in history); ties re-folds every layer onto the anchor each night
    method: str = Field("fold", min_length=1)
    anchor_weight: float = Field(0.7, ge=0, lt=1)
    layer: LayerDefaults = Field(default_factory=LayerDefaults)
    normalize: bool = False  # mergekit's default is true: a lone layer's weight then cancels
    # fold / magmax: no touched tensor moves further than this from the anchor, relative to the
    # anchor's own norm (‖W − A‖ ≤ reach·‖A‖); over it, the accumulated change is scaled back
    reach: float | None = Field(None, gt=0)

    @property
    def lam(self) -> float:
        """λ = 1 − anchor_weight: the share of the merged delta added to the anchor."""
        return 1.0 - self.anchor_weight


class LoraSection(_Strict):
    r: int = Field(32, ge=1)
    alpha: float = Field(64, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj"]


class TrainSection(_Strict):
    epochs: int = Field(3, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(2, ge=1)
    max_seq_len: int = Field(512, ge=16)
    seed: int = 0
    # keep only each layer's input for the backward pass and recompute the rest: activations
    # fall from every layer's working set to one (budget --phase dream shows both), ~30% slower
    gradient_checkpointing: bool = False


class DreamRecipe(_Strict):
    # the trainer, by the name its module registers (evolve/trainers/): auto picks the one this
    # machine suits (mlx_lora on Apple silicon with mlx-lm, else peft_lora)
    trainer: str = Field("auto", min_length=1)
    lora: LoraSection = Field(default_factory=LoraSection)
    train: TrainSection = Field(default_factory=TrainSection)
    device: Literal["auto", "cpu", "cuda", "mps", "mlx"] = "auto"


class AnchorRecipe(_Strict):
    """Limits `anchor check` applies when no flag is given."""

    max_drift: float | None = Field(0.01, gt=0)
    max_probe_loss_delta: float | None = Field(0.25, gt=0)


class ResonateRecipe(_Strict):
    weights: dict[Literal["mark", "novelty", "judge"], float] = {"mark": 1.0, "novelty": 0.5, "judge": 0.5}
    threshold: float = Field(0.3, ge=0, le=1)
    dedup_cosine: float = Field(0.95, gt=0, le=1)
    context_turns: int = Field(4, ge=0)
    rehearsal: float = Field(0.0, ge=0, le=1)  # share of learned moments replayed beside the new
    min_examples: int = Field(6, ge=1)  # `evolve` does nothing with fewer new moments
    # a held-out slice of each night's new moments, never trained on (now or later), to measure
    # whether the night generalised (anchor drift): off in a home, where every best moment is learned
    holdout: float = Field(0.0, ge=0, lt=1)  # the share held out; 0: none
    holdout_min_tokens: int = Field(500, ge=1)  # held out until the slice is at least this long
    holdout_seed: int = Field(0, ge=0)  # the split's seed, recorded with the buffer
    judge_rubric: str = ("You judge moments in a conversation. A reply resonates when it surprises, "
                         "deepens an idea, or shows a distinct and coherent character. Score 0 for "
                         "generic or empty replies and 9 for replies worth remembering.")


class EvolveRecipe(_Strict):
    """The steps of one cycle, by the names evolve/steps/ registers, and the lease a cycle holds
    on a running server's memory while it dreams (evolve/night.py)."""

    steps: list[str] = Field(default_factory=lambda: ["score", "buffer", "dream", "merge", "check", "prepare"],
                             min_length=1)
    lease_s: float = Field(120.0, ge=2, le=21600)  # a server whose cycle stopped renewing loads `current` again after this


RECIPES: dict[str, type[BaseModel]] = {"dream": DreamRecipe, "merge": MergeRecipe,
                                       "anchor": AnchorRecipe, "resonate": ResonateRecipe,
                                       "evolve": EvolveRecipe}


def load_recipe_with(home: Home | None, name: str, overrides: dict):
    """recipes/NAME.yaml with the command line's `overrides` merged in (None: not given),
    validated once; an override that fails names itself, not the file."""
    recipe = load_recipe(home, name, RECIPES[name])
    given = _given(overrides)
    return with_overrides(recipe, given) if given else recipe


def with_overrides(recipe: BaseModel, overrides: dict) -> BaseModel:
    """`recipe` with nested `overrides` merged, validated by the recipe's own schema."""
    from pydantic import ValidationError

    from soulctl.errors import InvalidInput

    try:
        return type(recipe).model_validate(_merged(recipe.model_dump(), overrides))
    except ValidationError as exc:
        err = exc.errors()[0]
        interval = _interval(type(recipe), err["loc"])
        what = f"{err['loc'][-1]} {err.get('input')!r}"
        raise InvalidInput(f"{what} is outside {interval}" if interval else
                           f"{'.'.join(str(p) for p in err['loc'])} = {err.get('input')!r}: {err['msg']}",
                           hint="fix the value given on the command line") from None


def _interval(model: type[BaseModel], loc: tuple) -> str | None:
    """The bounds a numeric field declares, as an interval: (0, 1], [0, 1), (0, ∞)."""
    import annotated_types as at

    field = None
    for part in loc:
        if field is not None:
            model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        field = model.model_fields[part]
    lo = hi = None
    for m in field.metadata:
        if isinstance(m, (at.Gt, at.Ge)):
            lo = ("(" if isinstance(m, at.Gt) else "[") + f"{getattr(m, 'gt', getattr(m, 'ge', None))}"
        if isinstance(m, (at.Lt, at.Le)):
            hi = f"{getattr(m, 'lt', getattr(m, 'le', None))}" + (")" if isinstance(m, at.Lt) else "]")
    if lo is None and hi is None:
        return None
    return f"{lo or '(-∞'}, {hi or '∞)'}"


def _given(overrides: dict) -> dict:
    out = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            value = _given(value)
        if value is not None and value != {}:
            out[key] = value
    return out


def _merged(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _merged(base.get(key) or {}, value) if isinstance(value, dict) else value
    return merged


def load_recipe(home: Home | None, name: str, model: type[BaseModel], path: Path | None = None):
    """recipes/NAME.yaml of the home (or the shipped one), validated with file:line errors."""
    from soulctl.home.recipes import recipe_file

    if path is None:
        path = recipe_file(home, f"{name}.yaml")
    if path is None:
        return model()
    from soulctl.infile import LIMITS, read_text

    text = read_text(path, LIMITS["config"], "recipe")
    return validate_mapping(model, text, str(path))
