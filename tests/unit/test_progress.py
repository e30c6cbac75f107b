"""Progress without a terminal (DESIGN §9): a line while a long step runs, not only at its end."""

from __future__ import annotations

import time

from soulctl.progress import LineProgress


def test_a_long_step_says_how_far_it_is_while_it_runs():
    heard: list[str] = []
    with LineProgress(heard.append, every=0.05).task("Training", 10) as task:
        for _ in range(4):
            time.sleep(0.1)
            task.advance(1)
    assert len(heard) >= 2, heard
    assert all(line.startswith("Training: ") and " of 10 after " in line for line in heard), heard
    assert any("s left" in line for line in heard)


def test_a_quick_step_says_nothing():
    heard: list[str] = []
    with LineProgress(heard.append).task("Novelty", 3) as task:
        task.advance(3)
    assert heard == []
