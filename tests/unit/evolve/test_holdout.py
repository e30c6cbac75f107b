"""The held-out slice of a night's buffer (evolve/buffer.py held_out): by a recorded seed, long
enough, never the whole night, never a rehearsed moment."""

from __future__ import annotations

import json

from soulctl.evolve.buffer import held_out
from soulctl.home.recipe_schemas import ResonateRecipe


def example(i: int, words: int = 40) -> str:
    return json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                    {"role": "assistant", "content": " ".join(f"w{i}x{j}" for j in range(words))}]})


def test_the_split_is_seeded_long_enough_and_leaves_some_to_train_on():
    lines, ids = [example(i) for i in range(20)], [f"id{i}" for i in range(20)]
    recipe = ResonateRecipe(holdout=0.2, holdout_min_tokens=500, holdout_seed=3)
    split = held_out(lines, ids, recipe, set())
    assert split["held_ids"] and split["ids"] and set(split["held_ids"]).isdisjoint(split["ids"])
    assert sorted(split["held_ids"] + split["ids"]) == sorted(ids)
    assert len(split["held_ids"]) >= 0.2 * 20 and split["tokens"] >= 500
    assert split["lines"] == [lines[ids.index(i)] for i in split["ids"]]  # in the buffer's order
    assert held_out(lines, ids, recipe, set()) == split  # the recorded seed gives the same slice
    assert held_out(lines, ids, ResonateRecipe(holdout=0.2, holdout_seed=4), set())["held_ids"] != split["held_ids"]
    assert split["seed"] == 3 and split["share"] == 0.2


def test_one_example_at_least_is_trained_on_and_rehearsed_ones_stay_in():
    lines, ids = [example(i, 5) for i in range(4)], [f"id{i}" for i in range(4)]
    split = held_out(lines, ids, ResonateRecipe(holdout=0.9, holdout_min_tokens=100_000), {"id0"})
    assert "id0" in split["ids"] and len(split["ids"]) >= 1 and "id0" not in split["held_ids"]
    assert len(split["held_ids"]) == 2  # of the three new ones, all but one
    alone = held_out(lines[:1], ids[:1], ResonateRecipe(holdout=0.5), set())
    assert alone["held_ids"] == [] and alone["ids"] == ids[:1]
