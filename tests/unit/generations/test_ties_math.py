"""TIES on stacks of deltas: trimming by magnitude and the weighted sign election."""

from __future__ import annotations

import pytest


def test_trim_keeps_the_largest_magnitudes():
    import torch

    from soulctl.generations.ties import trim

    delta = torch.tensor([[0.1, -0.9, 0.3], [0.05, 0.7, -0.2]])
    kept = trim(delta, 0.34)  # 2 of 6 entries
    assert kept.tolist() == [[0.0, pytest.approx(-0.9), 0.0], [0.0, pytest.approx(0.7), 0.0]]
    assert trim(delta, 0.01).count_nonzero() == 1  # at least one entry survives
    assert torch.equal(trim(delta, 1.0), delta)


def test_ties_elects_signs_by_weighted_sum_and_drops_dissent():
    import torch

    from soulctl.generations.ties import ties_delta

    a = torch.tensor([1.0, -2.0, 3.0])
    b = torch.tensor([-3.0, -1.0, 1.0])
    # weights 1 and 1: entry 0 sums to -2 → elected negative, a's +1 is dropped
    mixed = ties_delta([a, b], [1.0, 1.0], [1.0, 1.0], normalize=False, lam=1.0)
    assert mixed.tolist() == [-3.0, -3.0, 4.0]
    # a heavier first layer wins entry 0's election
    heavy = ties_delta([a, b], [1.0, 1.0], [4.0, 1.0], normalize=False, lam=1.0)
    assert heavy.tolist()[0] == pytest.approx(4.0)
    # normalize divides by the agreeing weights; λ scales the result
    norm = ties_delta([a, b], [1.0, 1.0], [1.0, 1.0], normalize=True, lam=0.5)
    assert norm.tolist() == pytest.approx([-1.5, -0.75, 1.0])
