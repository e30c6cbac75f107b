"""A cycle you can watch (evolve/watch.py): the state `status` reads while a cycle runs, the
heartbeat a reader without a terminal gets, nothing left behind."""

from __future__ import annotations

import json
import os
import time

from soulctl.evolve.watch import Watch, running
from soulctl.home import Home


def home_at(tmp_path) -> Home:
    home = Home(tmp_path)
    home.data.mkdir(parents=True)
    (home.data / "evolve.lock").write_text(str(os.getpid()))  # as cycle_lock writes it
    return home


def test_the_state_names_the_stage_and_the_work_inside_it_with_what_is_left(tmp_path):
    home = home_at(tmp_path)
    assert running(home) is None
    with Watch(home, ["score", "buffer", "dream"], every=60) as watch:
        watch.stage("dream")
        with watch.progress(None).task("Training", 40) as task:
            task.advance(10)
            time.sleep(0.05)
            watch._write()
            state = running(home)
            assert state["stage"] == "dream" and state["step"] == 3 and state["steps"] == ["score", "buffer", "dream"]
            assert state["progress"]["task"] == "Training" and state["progress"]["done"] == 10
            assert state["progress"]["total"] == 40 and state["progress"]["eta_s"] > 0
            assert "dream: " in watch.line() and "10 of 40" in watch.line() and "2 of 3 steps done" in watch.line()
    assert running(home) is None and not (home.data / "evolve.json").exists()


def test_a_reader_without_a_terminal_hears_from_a_long_stage_before_it_ends(tmp_path):
    home = home_at(tmp_path)
    heard: list[str] = []
    with Watch(home, ["dream"], heartbeat=heard.append, every=0.2) as watch:
        watch.stage("dream")
        deadline = time.time() + 10
        while len(heard) < 2 and time.time() < deadline:
            time.sleep(0.05)
    assert len(heard) >= 2 and all(line.startswith("dream: ") for line in heard), heard


def test_a_killed_cycles_state_is_not_a_running_one(tmp_path):
    home = home_at(tmp_path)
    (home.data / "evolve.lock").write_text("999999999")  # no such process
    (home.data / "evolve.json").write_text(json.dumps({"pid": 999999999, "stage": "dream", "started": 0}))
    assert running(home) is None
    (home.data / "evolve.json").write_text("{not json")
    assert running(home) is None
