"""The cycle's one seam: a step is a registered class; the recipe names the steps in order;
docs/extending.md's example step works as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from soulctl.errors import ConfigError
from soulctl.evolve.steps import Cycle, Stop, known, steps_named

DOCS = Path(__file__).resolve().parents[3] / "docs" / "extending.md"


def test_the_shipped_steps_are_found_by_name_in_the_recipes_order():
    assert {"score", "buffer", "dream", "merge", "check"} <= set(known())
    names = [s.name for s in steps_named(["buffer", "score"])]
    assert names == ["buffer", "score"]
    with pytest.raises(ConfigError, match="unknown step 'dpo'"):
        steps_named(["score", "dpo"])


def test_the_documented_example_step_registers_plans_and_stops():
    code = next(block for block in re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S) if "@step(" in block)
    exec(compile(code, str(DOCS), "exec"), {})
    example = steps_named(["enough-moments"])[0]
    cycle = Cycle(soul=None, parent="gen-0001")
    assert example.plan(cycle) == {"at_least": 4}
    cycle.buffer = {"log_ids": ["a", "b"]}
    with pytest.raises(Stop) as stop:
        example.run(cycle)
    assert stop.value.status == "rejected" and "only 2 moments" in stop.value.reason
    cycle.buffer = {"log_ids": list("abcdef")}
    assert example.run(cycle) == {"moments_learned": 6}


def test_the_documented_example_merge_method_registers_and_changes_a_tensor():
    import torch

    from soulctl.generations.merge_methods import registry
    from soulctl.home.recipe_schemas import MergeRecipe

    code = next(block for block in re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
                if "@merge_method(" in block)
    try:
        exec(compile(code, str(DOCS), "exec"), {})
        method = registry.method("halfway")
        base, prev, mixed = torch.zeros(3), torch.tensor([1.0, 0.0, -1.0]), torch.tensor([2.0, 2.0, 2.0])
        assert method.folds and torch.equal(method.change(MergeRecipe(method="halfway"), base, prev, mixed),
                                            torch.tensor([2.0, 1.0, 0.0]))
    finally:
        registry._METHODS.pop("halfway", None)
