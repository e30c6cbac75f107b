"""Reciprocal rank fusion."""

from __future__ import annotations

import pytest


def test_rrf_rewards_agreement_and_breaks_ties_by_best_rank():
    from soulctl.search.fusion import RRF_K, rrf

    fused = rrf({"semantic": [("a", 0.9), ("b", 0.8), ("c", 0.1)], "keyword": [("b", 7.0), ("d", 3.0)]})
    keys = [key for key, *_ in fused]
    assert keys[0] == "b"  # in both rankings
    assert fused[0][1] == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 1))
    assert keys[1:] == ["a", "d", "c"]  # a and d tie on score; a's first rank comes first
    assert fused[0][2] == {"semantic": 2, "keyword": 1} and fused[0][3] == {"semantic": 0.8, "keyword": 7.0}
    assert len(rrf({"x": [("a", 1.0), ("b", 0.5)]}, k=1)) == 1
