"""`soulctl evolve`, one cycle as one safe step, and `soulctl schedule`, on the embedded SmolLM2:
only new moments, the rejected path, nothing new, one cycle at a time, SIGKILL at any stage."""

from __future__ import annotations

import fcntl
import json
import re
import plistlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import BASE_ENV, REPO, copy_home, refused, soulctl

CONVERSATION = REPO / "scripts" / "demo-conversation.jsonl"


def set_recipe(home: Path, name: str, old: str, new: str) -> None:
    path = home / "recipes" / f"{name}.yaml"
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def talked(gen0_home, tmp_path_factory):
    """A home with the demo conversation, a cheap dream (one epoch) and a low threshold."""
    home = tmp_path_factory.mktemp("cycle") / "home"
    copy_home(gen0_home, home)
    assert soulctl("log", "add", "--jsonl", "--home", home, input=CONVERSATION.read_text()).code == 0
    set_recipe(home, "resonate", "threshold: 0.3 ", "threshold: 0.45 ")  # 6 of the 16 replies
    set_recipe(home, "resonate", "min_examples: 6", "min_examples: 4")
    set_recipe(home, "dream", "epochs: 3", "epochs: 1")
    return home


def evolve(home, *args):
    return soulctl("--home", home, "--json", "evolve", *args, timeout=900)


def cycle_packets(home) -> list[dict]:
    listed = soulctl("--home", home, "--json", "log", "ls", "--role", "system", "--session", "evolve")
    return [json.loads(line) for line in listed.stdout.splitlines()]


def current(home) -> str:
    return (home / "generations" / "current").resolve().name


def test_a_cycle_learns_only_new_moments_then_has_nothing_to_do(talked, tmp_path):
    home = tmp_path / "home"
    copy_home(talked, home)
    plan = evolve(home, "--dry-run")
    assert plan.code == 0 and plan.json()["status"] == "plan" and plan.json()["unscored"] == 16, plan
    assert not list((home / "data").glob("buffers/*")) and current(home) == "gen-0000"  # nothing written

    # a reply that opens its session (a morning greeting), marked as resonant as can be: the
    # night still succeeds, and the greeting is left out of the buffer, counted
    greeting = soulctl("--home", home, "--json", "log", "add", "Good morning. The herons are back.",
                       "--role", "soul", "--session", "morning").json()["id"]
    assert soulctl("--home", home, "resonate", "mark", greeting, "1.0").code == 0

    first = evolve(home)
    assert first.code == 0, first
    r = first.json()
    assert r["status"] == "accepted" and r["generation"] == "gen-0001" and current(home) == "gen-0001"
    assert r["examples"] >= 4 and r["loss"][1] < r["loss"][0]
    assert set(r["timings"]) >= {"score", "buffer", "dream", "merge", "check", "total"}
    kept = json.loads((home / "data" / "buffers" / f"{r['buffer']}.json").read_text())
    learned = set(kept["log_ids"])
    assert greeting not in learned and kept["dropped_unprompted"] == 1, kept

    again = evolve(home)  # everything resonant was learned: nothing to do, nothing changes
    assert again.code == 10 and again.json()["status"] == "nothing-new", again  # a quiet night
    assert "learned by the current generation" in again.json()["reason"] and current(home) == "gen-0001"
    assert [p["meta"]["evolve"]["status"] for p in cycle_packets(home)] == ["nothing-new", "accepted"]

    # a new day: three new replies, each to a question, marked; the buffer holds those and
    # nothing learned before
    day2 = [("What did the heron teach you?", "The heron taught me patience today."),
            ("Do rivers remember?", "Rivers keep their own diaries."),
            ("What did you dream?", "I dreamt of a library made of tide pools.")]
    lines = "".join(json.dumps({"prose": p, "role": r, "session": "day2"}) + "\n"
                    for q, a in day2 for p, r in ((q, "user"), (a, "soul")))
    added = soulctl("--home", home, "--json", "log", "add", "--jsonl", input=lines)
    new_ids = [json.loads(line)["id"] for line in added.stdout.splitlines()][1::2]
    for packet_id in new_ids:
        assert soulctl("--home", home, "resonate", "mark", packet_id, "1.0").code == 0
    assert soulctl("--home", home, "--json", "resonate", "score").json()["scored"] == 3  # only the new
    buffer = soulctl("--home", home, "--json", "resonate", "buffer").json()
    assert set(buffer["log_ids"]) == set(new_ids) and buffer["skipped_learned"] == len(learned)
    replay = soulctl("--home", home, "--json", "resonate", "buffer", "--include-learned").json()
    assert set(replay["log_ids"]) >= set(new_ids) | learned


def test_a_generation_past_the_limits_is_rejected_and_current_stays(talked, tmp_path):
    home = tmp_path / "home"
    copy_home(talked, home)
    set_recipe(home, "anchor", "max_drift: 0.01", "max_drift: 1.0e-12")
    result = evolve(home)
    assert result.code == 1, result
    r = result.json()
    assert r["status"] == "rejected" and r["generation"] == "gen-0001" and r["parent"] == "gen-0000"
    assert any("exceeds 1e-12" in f for f in r["failures"]), r
    assert current(home) == "gen-0000"
    assert result.stderr.strip().splitlines()[-1].startswith("error: gen-0001 rejected")
    listed = {g["id"]: g for g in map(json.loads, soulctl("--home", home, "--json", "gen", "ls").stdout.splitlines())}
    assert "rejected" in listed["gen-0001"]["marks"] and listed["gen-0000"]["current"]
    logged = cycle_packets(home)[0]
    assert logged["prose"].startswith("evolve: rejected — weight drift")
    assert logged["meta"]["evolve"]["generation"] == "gen-0001"
    assert soulctl("--home", home, "gen", "verify").code == 0


def test_one_cycle_at_a_time_and_sigkill_at_any_stage_leaves_a_sound_home(talked, tmp_path):
    home = tmp_path / "home"
    copy_home(talked, home)

    def start():
        return subprocess.Popen([sys.executable, "-m", "soulctl", "-v", "--home", str(home), "evolve"],
                                env=BASE_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_for_stage(proc, name: str) -> None:
        for line in proc.stderr:  # -v names each stage as it starts
            if line.startswith(f"evolve: {name}"):
                threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
                return
        raise AssertionError(f"evolve ended before its {name} stage")

    def wait_for(pattern: str, proc) -> None:
        deadline = time.time() + 600
        while time.time() < deadline and not list(home.glob(pattern)):
            assert proc.poll() is None, "evolve ended before the stage under test"
            time.sleep(0.05)
        assert list(home.glob(pattern)), pattern

    # mid-dream: a second cycle is refused while the first holds the lock
    first = start()
    wait_for_stage(first, "dream")
    time.sleep(3)
    refused(soulctl("--home", home, "evolve"), 7, "another evolve is running in this home")
    assert first.poll() is None
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert current(home) == "gen-0000" and not (home / "generations" / "gen-0001").exists()
    assert soulctl("--home", home, "gen", "verify").code == 0

    # mid-merge: the generation being built never appears, current never moves
    second = start()
    wait_for_stage(second, "merge")
    wait_for("generations/.tmp-gen-0001-*", second)
    time.sleep(0.3)
    second.send_signal(signal.SIGKILL)
    second.wait()
    assert current(home) == "gen-0000" and not (home / "generations" / "gen-0001").exists()
    assert soulctl("--home", home, "gen", "verify").code == 0

    # the lock died with its holder; the next cycle runs to its end and cleans what the kills
    # left (here past an impossible limit, removing what it made: --remove-rejected)
    set_recipe(home, "anchor", "max_drift: 0.01", "max_drift: 1.0e-12")
    done = evolve(home, "--remove-rejected")
    assert done.code == 1 and done.json()["status"] == "rejected" and done.json()["removed"] is True, done
    assert not (home / "generations" / done.json()["generation"]).exists() and current(home) == "gen-0000"
    assert not list(home.glob("data/.staged-adapter-*")) and not list(home.glob("generations/.tmp-*"))
    assert soulctl("--home", home, "gen", "verify").code == 0


def test_the_lock_refuses_a_second_cycle_without_waiting(talked, tmp_path):
    """The lock alone, without a model: a held lock is a one-line refusal naming the holder."""
    home = tmp_path / "home"
    copy_home(talked, home)
    path = home / "data" / "evolve.lock"
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fh.truncate(0)
        fh.write("4242")
        fh.flush()
        refused(soulctl("--home", home, "evolve"), 7, "(pid 4242)")
    nothing = soulctl("--home", home, "evolve", "--dry-run")
    assert nothing.code == 0, nothing


def test_nothing_new_below_min_examples_does_nothing(talked, tmp_path):
    home = tmp_path / "home"
    copy_home(talked, home)
    set_recipe(home, "resonate", "min_examples: 4", "min_examples: 500")
    result = evolve(home)
    assert result.code == 10, result  # a quiet night: the documented code the units count a success
    r = result.json()
    assert r["status"] == "nothing-new" and "fewer than the recipe's min_examples 500" in r["reason"]
    assert r["mark"].startswith("soulctl resonate") and "soul replies qualify (resonance ≥ 0.45)" in r["reason"]
    assert r["adapter"] is None and current(home) == "gen-0000"
    assert not list((home / "data").glob("adapters/ad-*")) and not (home / "generations" / "gen-0001").exists()
    said = soulctl("--home", home, "evolve", timeout=900)  # for a person: one line, the count, the threshold, how to mark
    assert said.code == 10 and len(said.stdout.strip().splitlines()) == 1, said
    line = said.stdout.strip()
    assert line.startswith("quiet night: ") and "min_examples 500" in line and "soulctl resonate mark" in line, line
    assert re.search(r"\d+ of \d+ soul replies qualify", line), line


# -- schedule ------------------------------------------------------------------------------

def test_schedule_dry_run_prints_each_scheduler_form(talked):
    home = talked
    systemd = soulctl("--home", home, "--json", "schedule", "install", "--scheduler", "systemd",
                      "--at", "3:05", "--dry-run").json()
    service, timer = sorted(systemd["files"])
    assert service.endswith(".service") and timer.endswith(".timer")
    assert "OnCalendar=*-*-* 03:05:00\nPersistent=true" in systemd["files"][timer]
    assert f'"--home" "{home.resolve()}" "evolve"\n' in systemd["files"][service]
    assert f"StandardOutput=append:{home.resolve()}/data/evolve.log\n" in systemd["files"][service]
    weekly = soulctl("--home", home, "--json", "schedule", "install", "--scheduler", "launchd", "--every", "week",
                     "--dry-run").json()
    plist = plistlib.loads(next(iter(weekly["files"].values())).encode())
    assert plist["StartCalendarInterval"] == {"Hour": 3, "Minute": 0, "Weekday": 1}
    assert plist["ProgramArguments"][-1] == "evolve" and plist["StandardOutPath"].endswith("evolve.log")
    cron = soulctl("--home", home, "--json", "schedule", "install", "--scheduler", "cron", "--at", "04:30",
                   "--dry-run").json()
    assert cron["crontab"].splitlines()[1].startswith("30 4 * * * cd ")
    assert cron["crontab"].startswith(f"# BEGIN {cron['name']}") and f"# END {cron['name']}" in cron["crontab"]
    assert not (home / "data" / "schedule.json").exists()
    refused(soulctl("--home", home, "schedule", "install", "--at", "25:00", "--dry-run"), 5, "not a time of day")
    refused(soulctl("--home", home, "schedule", "install", "--every", "month", "--dry-run"), 5, "--every 'month'")


def test_schedule_install_and_remove_keep_the_users_other_cron_lines(talked, tmp_path):
    """A stand-in `crontab` on PATH with the real one's interface (-l, and - to replace)."""
    home = tmp_path / "home"
    copy_home(talked, home)
    table = tmp_path / "crontab.txt"
    table.write_text("MAILTO=me@example.org\n15 * * * * /usr/bin/backup\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "crontab"
    stand_in.write_text(f"#!/bin/sh\nif [ \"$1\" = -l ]; then cat {table}; else cat > {table}; fi\n")
    stand_in.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    installed = soulctl("--home", home, "--json", "schedule", "install", "--scheduler", "cron", env=env)
    assert installed.code == 0, installed
    text = table.read_text()
    assert text.startswith("MAILTO=me@example.org\n15 * * * * /usr/bin/backup\n# BEGIN soulctl-evolve-")
    assert "0 3 * * * cd " in text
    status = soulctl("--home", home, "--json", "schedule", "status", env=env).json()
    assert status["installed"] and status["scheduler"] == "cron" and status["next_run"][11:16] == "03:00"
    again = soulctl("--home", home, "schedule", "install", "--scheduler", "cron", "--at", "05:00", env=env)
    assert again.code == 0 and table.read_text().count("# BEGIN soulctl-evolve-") == 1
    assert "0 5 * * * cd " in table.read_text()
    removed = soulctl("--home", home, "schedule", "remove", env=env)
    assert removed.code == 0, removed
    assert table.read_text() == "MAILTO=me@example.org\n15 * * * * /usr/bin/backup\n"
    refused(soulctl("--home", home, "schedule", "remove", env=env), 3, "no schedule installed")
