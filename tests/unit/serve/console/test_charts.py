"""The console's server-drawn charts and the resonance map's choice of points, without a server."""

from __future__ import annotations

import re

import numpy as np

from soulctl.serve.console import resonance
from soulctl.serve.console.svg import scatter, series_chart


def test_a_series_chart_skips_what_was_not_measured_and_draws_the_bound():
    svg = series_chart(["0000", "0001", "0002"], [{"name": "drift", "values": [0.0, None, 0.004]}],
                       bound=0.01, bound_label="max drift", href=lambda i: f"/lineage/gen-{i:04d}", title="t")
    assert svg.count("<circle") == 2 and 'href="/lineage/gen-0002"' in svg and 'href="/lineage/gen-0001"' not in svg
    assert 'class="bound"' in svg and "max drift 0.01" in svg
    assert series_chart([], [{"name": "x", "values": []}]).startswith("<svg")  # nothing measured yet: still a chart


def test_the_map_escapes_what_the_soul_said_and_rings_the_next_buffer():
    points = [{"id": "a1", "x": 0.0, "y": 0.0, "resonance": 0.9, "cluster": 0, "next": True,
               "prose": '<script>alert("x")</script>'},
              {"id": "b2", "x": 1.0, "y": 2.0, "resonance": None, "cluster": 1, "next": False, "prose": "plain"}]
    svg = scatter(points)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ringed = re.search(r'<circle id="p-a1"[^>]*>', svg).group(0)
    assert 'stroke="#111"' in ringed and 'data-resonance="0.900"' in ringed
    plain = re.search(r'<circle id="p-b2"[^>]*>', svg).group(0)
    assert "stroke=" not in plain and 'data-resonance=""' in plain
    assert "talk to the soul first" in scatter([])


def test_every_reply_of_the_next_buffer_is_drawn_and_no_more_than_the_cap(monkeypatch):
    monkeypatch.setattr(resonance, "MAX_POINTS", 50)
    meta = [{"id": f"p{i}"} for i in range(400)]
    nxt = [i % 13 == 0 for i in range(400)]
    drawn = resonance._pick(meta, nxt)
    assert len(drawn) == 50 and all(i in drawn for i in range(400) if nxt[i]) and drawn == sorted(drawn)
    assert resonance._pick(meta, nxt) == drawn  # the same replies from one page to the next
    assert resonance._pick(meta[:20], nxt[:20]) == list(range(20))


def test_the_clusters_are_reproducible_and_separate_what_is_apart():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 8)) + np.eye(8)[0] * 6
    b = rng.normal(size=(30, 8)) + np.eye(8)[1] * 6
    x = np.vstack([a, b]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = resonance._kmeans(x, 2)
    assert len(set(labels[:30])) == 1 and len(set(labels[30:])) == 1 and labels[0] != labels[30]
    assert (resonance._kmeans(x, 2) == labels).all()
