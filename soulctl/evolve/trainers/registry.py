"""Trainers by name: a trainer is a class in a module of this package, registered with
`@trainer("name")`; recipes/dream.yaml picks one with `trainer: name` (`auto`: the first that
prefers this machine, else peft_lora). A new trainer is one module here and that recipe line."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from soulctl.errors import InvalidInput, MissingDependency

_TRAINERS: dict[str, type] = {}
DEFAULT = "peft_lora"


def trainer(name: str):
    """Register a trainer class under `name`."""
    def register(cls):
        cls.name = name
        _TRAINERS[name] = cls
        return cls
    return register


def known() -> dict[str, type]:
    """Every trainer, this package's modules imported (again: a new module counts)."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name not in ("base", "registry"):
            importlib.import_module(f"{__package__}.{module.name}")
    return dict(_TRAINERS)


def pick(recipe, check_installed: bool = True):
    """The trainer the recipe names (an instance); `auto` asks each which this machine suits.
    A recipe's `device: mlx` still means the mlx trainer."""
    trainers = known()
    name = recipe.trainer
    if name == "auto":
        if recipe.device == "mlx":
            name = "mlx_lora"
        else:
            name = next((n for n, cls in sorted(trainers.items()) if cls().preferred()), DEFAULT)
    if name not in trainers:
        raise InvalidInput(f"unknown trainer {name!r}",
                           hint=f"recipes/dream.yaml trainer: auto or one of {', '.join(sorted(trainers))}")
    chosen = trainers[name]()
    if check_installed and not chosen.available():
        raise MissingDependency(getattr(chosen, "package", name), getattr(chosen, "extra", None),
                                why=f"the {name} trainer needs it")
    return chosen
