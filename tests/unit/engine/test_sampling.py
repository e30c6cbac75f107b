"""Sampling settings: one table of limits for soul.yaml, chat flags and the API; a fresh draw per
reply where no seed is set; a backend refuses, by name, a setting it cannot apply."""

from __future__ import annotations

import math

import pytest

from soulctl.engine.sampling import LIMITS, Sampling, out_of_range
from soulctl.errors import InvalidInput


@pytest.mark.parametrize("name, good, bad", [
    ("temperature", 2, 2.01), ("top_p", 1, 0), ("min_p", 0, 1), ("repeat_penalty", 1, 0.99),
    ("frequency_penalty", -2, -2.5), ("presence_penalty", 2, 3), ("seed", 0, -1), ("top_k", 0, -1),
])
def test_each_limit_takes_its_edge_and_refuses_past_it(name, good, bad):
    assert out_of_range(name, good) is None
    assert out_of_range(name, bad) == LIMITS[name][1]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_no_limit_takes_a_number_that_is_not_finite(value):
    assert all(out_of_range(name, value) for name in LIMITS if name not in ("seed", "top_k"))


def test_a_fixed_seed_is_kept_and_no_seed_is_a_fresh_draw_each_time():
    assert Sampling(seed=42).reply_seed() == 42
    draws = {Sampling().reply_seed() for _ in range(8)}
    assert len(draws) > 1 and all(0 <= d < 2**31 for d in draws)


@pytest.mark.parametrize("backend, setting", [("transformers", "frequency_penalty"), ("mlx", "presence_penalty"),
                                              ("transformers", "json")])
def test_a_backend_refuses_by_name_what_it_cannot_apply(backend, setting):
    value = {} if setting == "json" else 0.5
    with pytest.raises(InvalidInput, match="not supported by the"):
        Sampling(**{setting: value}).check(backend)
    assert Sampling().check(backend) == Sampling()
