"""Recipes: overrides merged and validated once; the judge's scale."""

from __future__ import annotations

import pytest

from soulctl.errors import InvalidInput


def test_recipe_overrides_merge_and_validate_once():
    from soulctl.home.recipe_schemas import MergeRecipe, with_overrides

    recipe = with_overrides(MergeRecipe(), {"anchor_weight": 0.5, "layer": {"density": 0.6}})
    assert (recipe.anchor_weight, recipe.layer.density, recipe.layer.weight) == (0.5, 0.6, 0.5)
    with pytest.raises(InvalidInput, match=r"anchor_weight 1.5 is outside \[0, 1\)"):
        with_overrides(MergeRecipe(), {"anchor_weight": 1.5})
    with pytest.raises(InvalidInput, match=r"density 0 is outside \(0, 1\]"):
        with_overrides(MergeRecipe(), {"layer": {"density": 0}})
    with pytest.raises(InvalidInput, match=r"weight -1 is outside \(0, ∞\)"):
        with_overrides(MergeRecipe(), {"layer": {"weight": -1}})


def test_the_judge_and_its_rubric_use_one_scale():
    import yaml

    from soulctl.home.recipe_schemas import ResonateRecipe
    from soulctl.evolve.resonate import JUDGE_ASK, JUDGE_TOP
    from soulctl.home.recipes import shipped_recipes

    shipped = yaml.safe_load((shipped_recipes() / "resonate.yaml").read_text())["judge_rubric"]
    for rubric in (ResonateRecipe().judge_rubric, shipped):
        assert "Score 0 for" in rubric and f"and {JUDGE_TOP} for" in rubric, rubric
    assert f"to {JUDGE_TOP} (" in JUDGE_ASK
