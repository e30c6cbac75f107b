"""Merge methods by name (mergekit's `merge_methods/registry.py` is the model): a method is a
class in a module of this package, registered with `@merge_method("name")`; recipes/merge.yaml
picks one with `method: name`. A new method is one module here and that recipe line."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from soulctl.errors import InvalidInput

_METHODS: dict[str, type] = {}


def merge_method(name: str):
    """Register a merge method class under `name`."""
    def register(cls):
        cls.name = name
        _METHODS[name] = cls
        return cls
    return register


def known() -> dict[str, type]:
    """Every merge method, this package's modules imported (again: a new module counts)."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name not in ("base", "registry"):
            importlib.import_module(f"{__package__}.{module.name}")
    return dict(_METHODS)


def method(name: str):
    """The merge method `name` (an instance), or InvalidInput naming the ones there are."""
    methods = known()
    if name not in methods:
        raise InvalidInput(f"unknown merge method {name!r}",
                           hint=f"recipes/merge.yaml method: one of {', '.join(sorted(methods))}")
    return methods[name]()


def folds(recipe) -> bool:
    """Whether `recipe`'s method makes a generation from its parent's weights."""
    return method(recipe.method).folds
