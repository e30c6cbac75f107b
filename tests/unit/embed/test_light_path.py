"""The light embedder's numpy arithmetic (embed/light.py) as the transformers model computes it,
on small arrays: layer norm and GELU."""

from __future__ import annotations

import math

import numpy as np

from soulctl.embed.light import _gelu, _layer_norm


def test_layer_norm_centres_and_scales_each_row():
    x = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 10.0, 10.0, 10.0]], dtype=np.float32)
    out = _layer_norm(x, np.ones(4, np.float32), np.zeros(4, np.float32), np.float32(1e-12))
    assert np.allclose(out[0].mean(), 0, atol=1e-6) and np.allclose(out[0].std(), 1, atol=1e-3)
    assert np.allclose(out[1], 0)
    shifted = _layer_norm(x, np.full(4, 2, np.float32), np.full(4, 1, np.float32), np.float32(1e-12))
    assert np.allclose(shifted, out * 2 + 1, atol=1e-5)


def test_gelu_is_the_exact_erf_form():
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0], dtype=np.float32)
    expected = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()]
    assert np.allclose(_gelu(x), expected, atol=1e-5)
