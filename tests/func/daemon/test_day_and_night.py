"""The living daemon (issue 24): a real `soulctl serve` follows `current` between turns, lends
its memory to the night's dream under a lease, and speaks; the budget knows every phase; the
service and `soulctl status`."""

from __future__ import annotations

import json
import plistlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import BASE_ENV, REPO, copy_home, refused, soulctl

from tests.func.served import Served, http

CONVERSATION = REPO / "scripts" / "demo-conversation.jsonl"


def recipe(home: Path, name: str, old: str, new: str) -> None:
    path = home / "recipes" / f"{name}.yaml"
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new, 1))


def soul_yaml(home: Path, **sections) -> None:
    data = yaml.safe_load((home / "soul.yaml").read_text())
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    (home / "soul.yaml").write_text(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def talked(gen0_home, tmp_path_factory):
    """The demo conversation, and recipes for a quick night: six moments, one short epoch."""
    home = copy_home(gen0_home, tmp_path_factory.mktemp("daemon") / "home")
    assert soulctl("log", "add", "--jsonl", "--home", home, input=CONVERSATION.read_text()).code == 0
    recipe(home, "resonate", "threshold: 0.3 ", "threshold: 0.45 ")
    recipe(home, "resonate", "min_examples: 6", "min_examples: 4")
    recipe(home, "dream", "epochs: 3", "epochs: 1")
    recipe(home, "dream", "max_seq_len: 512", "max_seq_len: 64")
    return home


@pytest.fixture(scope="module")
def grown(talked, tmp_path_factory):
    """`talked` after one night: gen-0001 current, gen-0000 still there."""
    home = copy_home(talked, tmp_path_factory.mktemp("grown") / "home")
    night = soulctl("evolve", "--json", "--home", home, timeout=900)
    assert night.code == 0 and night.json()["status"] == "accepted", night
    return home


def stream(port: int, session: str, tokens: int = 120) -> tuple[int, dict, list[dict]]:
    status, headers, body = http(port, "POST", "/v1/chat/completions", json.dumps(
        {"messages": [{"role": "user", "content": "Tell me a long story about the mill and its heron."}],
         "stream": True, "max_tokens": tokens, "user": session}).encode(), read_timeout=300)
    events = [json.loads(line[6:]) for line in body.decode().split("\n")
              if line.startswith("data: {")]
    return status, headers, events


def turn(port: int, session: str) -> tuple[int, dict, dict]:
    status, headers, body = http(port, "POST", "/v1/chat/completions", json.dumps(
        {"messages": [{"role": "user", "content": "Say one word."}], "max_tokens": 6, "user": session}).encode())
    return status, headers, json.loads(body)


def logged(home: Path, session: str) -> list[dict]:
    return sorted(soulctl("log", "ls", "--session", session, "--json", "--home", home).json_lines(),
                  key=lambda p: p["seq"])


def models(port: int) -> dict:
    return json.loads(http(port, "GET", "/v1/models")[2])["data"][0]


def in_background(fn, *args) -> tuple[threading.Thread, dict]:
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(result=fn(*args)))
    thread.start()
    return thread, box


def test_the_server_follows_current_between_turns(grown, tmp_path):
    home = copy_home(grown, tmp_path / "home")
    server = Served(home, log=tmp_path / "serve.log")
    try:
        assert models(server.port)["id"] == "gen-0001"
        # `gen use` while a stream is in flight: it ends on its generation, the next turn is the new one's
        thread, box = in_background(stream, server.port, "in-flight")
        time.sleep(1.5)
        used = soulctl("gen", "use", "gen-0000", "--json", "--home", home)
        assert used.code == 0 and used.json()["served"] == "gen-0000", used
        thread.join(300)
        status, headers, events = box["result"]
        assert status == 200 and headers["x-soul-generation"] == "gen-0001"
        assert {e["model"] for e in events} == {"gen-0001"}
        after = turn(server.port, "after-use")
        assert after[0] == 200 and after[1]["x-soul-generation"] == "gen-0000" == after[2]["model"]
        assert after[2]["soul"]["generation"] == "gen-0000" and models(server.port)["id"] == "gen-0000"
        assert logged(home, "in-flight")[1]["generation"] == "gen-0001"
        assert logged(home, "after-use")[1]["generation"] == "gen-0000"
        # a link moved behind its back (no notice): SIGHUP, or its own look within a second
        for move, notice in (("gen-0001", lambda: server.proc.send_signal(signal.SIGHUP)), ("gen-0000", None)):
            link = home / "generations" / "current"
            tmp = link.with_name(".tmp-link")
            os.symlink(move, tmp)
            os.replace(tmp, link)
            if notice:
                notice()
            deadline = time.time() + 60
            while time.time() < deadline and models(server.port)["id"] != move:
                time.sleep(0.2)
            assert models(server.port)["id"] == move
        deadline = time.time() + 30  # the switch's packet is written just after the new model answers
        while True:
            switches = [p for p in logged(home, "serve") if p["meta"]["serve"]["kind"] == "switch"]
            if len(switches) >= 3 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert [s["meta"]["serve"]["generation"] for s in switches] == ["gen-0000", "gen-0001", "gen-0000"]
        assert turn(server.port, "last")[0] == 200  # a switch reopens sessions on the new engine
        status = soulctl("status", "--json", "--home", home).json()
        assert status["server"]["running"] and status["served"] == status["current"] == "gen-0000"
        assert status["server"]["url"] == server.url + "/v1" and status["server"]["switches"] == 3
        (session,) = status["server"]["sessions"]
        assert session["session"] == "last" and session["turns"] == 2 and 0 < session["fill"] < 1
    finally:
        assert server.stop() == 0
    assert "serve: serving gen-0000 (was gen-0001" in server.log.read_text()
    assert not (home / "data" / "serve.json").exists()  # no server: nothing announced
    assert soulctl("status", "--json", "--home", home).json()["server"] == {"running": False}


def night_ram(home: Path) -> int:
    """A RAM between the night beside the server and beside a released one: the dream fits only
    with the soul's weights released."""
    soul_yaml(home, budget={"os_reserve": "1GiB"})
    dream = soulctl("budget", "--phase", "night", "--json", "--home", home).json()["phases"]["night"]["phases"]["dream"]
    beside, released = dream["beside_server"]["total_bytes"], dream["server_released"]["total_bytes"]
    assert released < beside
    return (beside + released) // 2


def wait_for(predicate, timeout: float = 300, every: float = 0.25):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def test_a_night_that_needs_the_memory_releases_the_soul_then_serves_the_new_one(talked, tmp_path):
    home = copy_home(talked, tmp_path / "home")
    soul_yaml(home, budget={"ram": night_ram(home)})
    server = Served(home, log=tmp_path / "serve.log")
    try:
        assert models(server.port)["id"] == "gen-0000"
        plan = soulctl("evolve", "--dry-run", "--json", "--home", home).json()["plan"]
        assert plan["night"]["release"] == "needed", plan["night"]  # the cycle below agrees
        thread, box = in_background(stream, server.port, "before-night", 60)
        time.sleep(1.0)
        evolve = subprocess.Popen([sys.executable, "-m", "soulctl", "--home", str(home), "--json", "evolve"],
                                  stdout=subprocess.PIPE, stderr=open(tmp_path / "evolve.log", "w"), env=BASE_ENV,
                                  cwd=REPO, text=True)
        wait_for(lambda: json.loads(http(server.port, "GET", "/health")[2])["status"] == "released")
        thread.join(300)
        assert box["result"][0] == 200 and {e["model"] for e in box["result"][2]} == {"gen-0000"}  # whole
        refused_turn = turn(server.port, "during-night")
        assert refused_turn[0] == 503 and int(refused_turn[1]["retry-after"]) >= 1
        assert "dreaming" in refused_turn[2]["error"]["message"]
        assert models(server.port)["soul"]["released"] is True
        watched = soulctl("status", "--json", "--home", home).json()["cycle"]  # a night you can see
        assert watched["stage"] == "dream" and watched["steps"][watched["step"] - 1] == "dream", watched
        assert watched["pid"] == evolve.pid and watched["elapsed_s"] > 0
        out, _ = evolve.communicate(timeout=900)
        assert evolve.returncode == 0, (tmp_path / "evolve.log").read_text()
        record = json.loads(out)
        assert record["status"] == "accepted" and record["night"]["released"] is True
        assert record["night"]["release"] == plan["night"]["release"]
        assert soulctl("status", "--json", "--home", home).json()["cycle"] is None
        assert record["served"] == record["generation"] == "gen-0001"
        after = turn(server.port, "after-night")
        assert after[0] == 200 and after[2]["model"] == "gen-0001" and models(server.port)["id"] == "gen-0001"
        assert logged(home, "during-night") == []  # refused, not accepted and dropped
    finally:
        assert server.stop() == 0
    story = (tmp_path / "evolve.log").read_text().splitlines()  # not a terminal: one line per stage
    for stage in ("score", "buffer", "dream", "merge", "check", "prepare"):
        assert any(line.startswith(f"evolve: {stage} done in ") and line.endswith(" s") for line in story), story
    assert any("released the soul's weights" in line for line in story)
    kinds = [p["meta"]["serve"]["kind"] for p in logged(home, "serve")]
    assert kinds == ["release", "restore"]


def test_the_lease_guards_both_sides_and_the_majordomo_answers_the_night(talked, tmp_path):
    home = copy_home(talked, tmp_path / "home")
    from soulctl.generations.base import bundled_gguf

    soul_yaml(home, roles={"majordomo": {"backend": "llamacpp", "model": str(bundled_gguf()), "context": 8192}})
    soul_yaml(home, budget={"ram": night_ram(home)})
    (home / "recipes" / "evolve.yaml").write_text("steps: [score, buffer, dream, merge, check, prepare]\nlease_s: 6\n")
    recipe(home, "dream", "epochs: 1", "epochs: 30")  # a long dream to be killed in
    server = Served(home, log=tmp_path / "serve.log")
    evolve = [sys.executable, "-m", "soulctl", "--home", str(home), "--json", "evolve"]
    try:
        # an evolve killed mid-dream: the majordomo answered meanwhile; the lease lapses, the soul is back
        doomed = subprocess.Popen(evolve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=BASE_ENV, cwd=REPO)
        wait_for(lambda: json.loads(http(server.port, "GET", "/health")[2])["status"] == "released")
        night_turn = turn(server.port, "night")
        assert night_turn[0] == 200 and night_turn[1]["x-soul-answered-by"] == "majordomo"
        assert night_turn[2]["soul"]["answered_by"] == "majordomo"
        assert [p["role"] for p in logged(home, "night")] == ["user", "majordomo"]
        time.sleep(2)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        killed_at = time.time()
        wait_for(lambda: json.loads(http(server.port, "GET", "/health")[2])["status"] == "ok", timeout=60)
        assert time.time() - killed_at < 6 + 3  # within the lease (and the server's one-second look)
        back = turn(server.port, "morning")
        assert back[0] == 200 and back[1]["x-soul-answered-by"] == "soul" and back[2]["model"] == "gen-0000"
        assert "lease lapsed" in logged(home, "serve")[-1]["prose"]
        # a server killed mid-dream: the cycle goes on to its end
        recipe(home, "dream", "epochs: 30", "epochs: 1")
        cycle = subprocess.Popen(evolve, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=BASE_ENV, cwd=REPO, text=True)
        wait_for(lambda: json.loads(http(server.port, "GET", "/health")[2])["status"] == "released")
        server.proc.send_signal(signal.SIGKILL)
        out, err = cycle.communicate(timeout=900)
        assert cycle.returncode == 0, err
        assert json.loads(out)["status"] == "accepted" and "served" not in json.loads(out)
        assert "the server is gone" in err
    finally:
        server.stop(signal.SIGKILL)


def test_the_budget_has_every_phase_of_the_night(talked):
    report = soulctl("budget", "--phase", "dream", "--json", "--home", talked).json()
    phases = report["phases"]
    dream = phases["dream"]
    assert dream["recipe"] == "without_checkpointing" and dream["training"]["trainer"] == "peft_lora"
    assert dream["training"]["tokens"] == 64 and dream["training"]["r"] == 32  # the home's recipe
    names = {c["name"] for c in dream["without_checkpointing"]["components"]}
    assert names == {"weights", "lora + adam", "activations", "logits", "runtime"}
    assert dream["with_checkpointing"]["bytes"] < dream["without_checkpointing"]["bytes"]
    assert phases["merge"]["bytes"] < dream["without_checkpointing"]["bytes"]
    assert phases["night"]["release"] == "not needed" and phases["night"]["fits"] is True
    seed = soulctl("budget", "--profile", "seed-stack", "--json").json()["phases"]
    assert seed["dream"]["training"]["trainer"] == "mlx_lora" and seed["night"]["release"] == "needed"
    shown = soulctl("budget", "--profile", "seed-stack")
    assert shown.code == 0 and "night: the night fits only with the soul's weights released" in shown.stdout
    lean = ("--os-reserve", "0", "--no-embedder", "--home", talked)
    serve = soulctl("budget", "--json", *lean).json()["total_bytes"]
    tight = soulctl("budget", "--phase", "night", "--json", "--ram", str(serve + 2**20), *lean)  # the day fits, the night not
    refused(tight, 1, "does not fit even beside a released server")
    assert tight.json()["phases"]["night"]["release"] == "not enough"
    refused(soulctl("budget", "--phase", "noon", "--home", talked), 2, "--phase 'noon'")


def test_service_units_for_each_supervisor_and_install_where_a_manager_runs(talked, tmp_path):
    home = copy_home(talked, tmp_path / "home")
    systemd = soulctl("service", "install", "--scheduler", "systemd", "--port", "8711", "--dry-run", "--json",
                      "--home", home).json()
    (path, unit), = systemd["files"].items()
    assert path.endswith(f"/systemd/user/{systemd['name']}.service")
    assert "Restart=on-failure" in unit and "WantedBy=default.target" in unit
    assert f'"--home" "{home.resolve()}" "serve" "--host" "127.0.0.1" "--port" "8711"\n' in unit
    assert f"StandardOutput=append:{home.resolve()}/data/serve.log\n" in unit
    launchd = soulctl("service", "install", "--scheduler", "launchd", "--dry-run", "--json", "--home", home).json()
    plist = plistlib.loads(next(iter(launchd["files"].values())).encode())
    assert plist["KeepAlive"] == {"SuccessfulExit": False} and plist["RunAtLoad"] is True
    assert "serve" in plist["ProgramArguments"] and plist["StandardOutPath"].endswith("serve.log")
    refused(soulctl("service", "install", "--host", "0.0.0.0", "--dry-run", "--home", home), 2, "needs a token")
    refused(soulctl("service", "install", "--scheduler", "cron", "--dry-run", "--home", home), 5,
            "needs a supervisor that restarts it")
    # install and remove through a stand-in `systemctl` with the real one's interface
    bin_dir, calls = tmp_path / "bin", tmp_path / "systemctl.calls"
    bin_dir.mkdir()
    stand_in = bin_dir / "systemctl"
    stand_in.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n[ \"$2\" = is-active ] && echo active\nexit 0\n")
    stand_in.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    installed = soulctl("service", "install", "--json", "--home", home, env=env)
    assert installed.code == 0 and installed.json()["scheduler"] == "systemd", installed
    name = installed.json()["name"]
    assert (tmp_path / "config" / "systemd" / "user" / f"{name}.service").is_file()
    assert f"--user enable --now {name}.service" in calls.read_text()
    status = soulctl("service", "status", "--json", "--home", home, env=env).json()
    assert status["installed"] and status["active"] is True and status["url"] == "http://127.0.0.1:8710/v1"
    assert soulctl("status", "--json", "--home", home, env=env).json()["service"]["name"] == name
    assert soulctl("service", "remove", "--home", home, env=env).code == 0
    assert not (tmp_path / "config" / "systemd" / "user" / f"{name}.service").exists()
    assert f"--user disable --now {name}.service" in calls.read_text()
    refused(soulctl("service", "remove", "--home", home, env=env), 3, "no service installed")
