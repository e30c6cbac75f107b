"""The gate's loopback check."""

from __future__ import annotations


def test_the_gate_knows_loopback():
    from soulctl.serve.gate import is_loopback

    assert all(map(is_loopback, ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.10", "::", "example.com"]))
