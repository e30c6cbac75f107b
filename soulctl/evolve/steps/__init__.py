"""The steps of an evolution cycle, behind one seam (mergekit's merge methods are the model).

A step is a class registered under a name with `@step("name")`; recipes/evolve.yaml lists
the steps a cycle runs, in order. Each has

- `plan(cycle) -> dict`: what it would do, for `evolve --dry-run` (reads only);
- `run(cycle) -> dict`: do it, hand its results on through the `Cycle`, and return what goes
  into the cycle's record. It ends the cycle early with `Stop(status, reason)` (nothing new,
  a rejected generation); any other failure ends it as `failed`, logged with the step's name.

The modules of this package are found at run time, so a new trainer or check is one new
module here plus its name in recipes/evolve.yaml (docs/extending.md walks through one).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from soulctl.errors import ConfigError

if TYPE_CHECKING:
    from soulctl.soul import Soul


@dataclass
class Cycle:
    """One cycle's state: the soul, its options, and what each step hands to the next."""

    soul: Soul
    parent: str | None
    include_learned: bool = False
    remove_rejected: bool = False
    progress: Any = None
    sizing: list[str] | None = None  # the examples the night is sized on, read before any step (night.py)
    buffer: dict | None = None  # the buffer step's record (id, examples, log ids …)
    adapter: dict | None = None  # the trainer's summary of the adapter it made
    generation: str | None = None  # the merged generation, not yet current
    report: dict | None = None  # the check's drift report


class Stop(Exception):
    """A step ends the cycle without a new current generation, for a reason that is not a
    failure: nothing new to learn (`nothing-new`), a generation past its limits (`rejected`)."""

    def __init__(self, status: str, reason: str, record: dict | None = None):
        super().__init__(reason)
        self.status, self.reason, self.record = status, reason, record or {}


class Step(Protocol):
    name: str

    def plan(self, cycle: Cycle) -> dict: ...

    def run(self, cycle: Cycle) -> dict: ...


_STEPS: dict[str, type] = {}


def step(name: str):
    """Register a step class under `name` (the word recipes/evolve.yaml uses)."""
    def register(cls):
        cls.name = name
        _STEPS[name] = cls
        return cls
    return register


def known() -> dict[str, type]:
    """Every registered step, this package's modules imported once."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return dict(_STEPS)


def steps_named(names: list[str]) -> list[Step]:
    """The steps a recipe names, in its order."""
    registry = known()
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ConfigError(f"recipes/evolve.yaml: unknown step {unknown[0]!r}",
                          hint=f"steps: {', '.join(registry)}")
    return [registry[n]() for n in names]
