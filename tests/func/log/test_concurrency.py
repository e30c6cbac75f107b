"""Several processes on one soul home at once, and a writer killed mid-way."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from conftest import BASE_ENV, soulctl

from soulctl.log.ingest import WRITE_BATCH

LOOP = """
import sys, time
from pathlib import Path
from soulctl.embed import embedder_for
from soulctl.home import Home
from soulctl.log import NewPacket, open_store

home = Home(sys.argv[1])
store = open_store(home)
embedder = embedder_for(home.config, home.root)
stop = Path(sys.argv[2])
n = 0
while not stop.exists():
    text = f"loop heartbeat number {n}"
    store.add([NewPacket(prose=text, role="system", session="loop")], embedder.encode([text]),
              embedder.model_id)
    n += 1
    print(n, flush=True)
    time.sleep(1.0)
"""


def _sql_one(home, query):
    result = soulctl("log", "sql", query, "--json", "--home", home)
    assert result.code == 0, result
    return result.json()


def test_long_running_process_and_four_writers(home, tmp_path):
    stop = tmp_path / "stop"
    loop = subprocess.Popen([sys.executable, "-c", LOOP, str(home), str(stop)], env=BASE_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert loop.stdout.readline().strip() == "1", loop.stderr.read() if loop.poll() else ""
    writers = []
    for w in range(4):
        lines = "\n".join(f"writer {w} line {i}: a unique thought about topic {w * 1000 + i}"
                          for i in range(250)) + "\n"
        proc = subprocess.Popen([sys.executable, "-m", "soulctl", "log", "add", "--session",
                                 f"w{w}", "--home", str(home)], env=BASE_ENV, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdin.write(lines)
        proc.stdin.close()
        writers.append(proc)
    answered = 0
    while any(p.poll() is None for p in writers):
        ls = soulctl("log", "ls", "-n", "3", "--json", "--home", home)
        found = soulctl("log", "search", "heartbeat", "--keyword", "-k", "1", "--json", "--home", home)
        assert ls.code == 0, ls
        assert found.code == 0, found
        answered += 1
        time.sleep(0.3)  # a reader among writers, not a busy loop taking their CPU
    for proc in writers:
        assert proc.wait() == 0, proc.stderr.read()
    stop.write_text("stop")
    loop_out, loop_err = loop.communicate(timeout=60)
    assert loop.returncode == 0, loop_err
    loop_count = int(([l for l in loop_out.split()] or ["1"])[-1])
    assert answered >= 1
    stats = _sql_one(home, "SELECT count(*) AS n, count(DISTINCT id) AS ids, count(DISTINCT seq) AS seqs "
                           "FROM packets")
    assert stats["n"] == 1000 + loop_count
    assert stats["ids"] == stats["n"] == stats["seqs"]
    per = soulctl("log", "sql", "SELECT session, count(*) AS n FROM packets GROUP BY session "
                  "ORDER BY session", "--json", "--home", home).json_lines()
    assert {r["session"]: r["n"] for r in per} == {"loop": loop_count, "w0": 250, "w1": 250,
                                                  "w2": 250, "w3": 250}
    hits = soulctl("log", "search", "topic 3249", "--keyword", "-k", "1", "--json", "--home", home).json_lines()
    assert hits and "topic 3249" in hits[0]["prose"]


def test_sigkill_mid_bulk_add_leaves_whole_packets(home):
    lines = "\n".join(f"bulk line {i} about the weather on day {i}" for i in range(5000)) + "\n"
    proc = subprocess.Popen([sys.executable, "-m", "soulctl", "log", "add", "--session", "bulk",
                             "--home", str(home)], env=BASE_ENV, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.stdin.write(lines)
    proc.stdin.close()
    deadline = time.time() + 180
    while time.time() < deadline:
        if _sql_one(home, "SELECT count(*) AS n FROM packets")["n"] > 0:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    assert proc.poll() is None, "the bulk add finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stats = _sql_one(home, "SELECT count(*) AS n, count(embedding) AS vectors, "
                           "min(len(embedding)) AS lo, max(len(embedding)) AS hi, "
                           "count(DISTINCT id) AS ids FROM packets")
    assert 0 < stats["n"] < 5000
    assert stats["n"] % WRITE_BATCH == 0  # whole batches, each one transaction of whole packets
    assert stats["vectors"] == stats["ids"] == stats["n"]
    assert stats["lo"] == stats["hi"] == 384
    assert soulctl("log", "add", "written after the crash", "--home", home).code == 0
    hits = soulctl("log", "search", "written after the crash", "-k", "1", "--json", "--home", home).json_lines()
    assert hits[0]["prose"] == "written after the crash"
    kept = soulctl("log", "search", "bulk line 7 weather", "--keyword", "-k", "1", "--json",
                   "--home", home).json_lines()
    assert kept and kept[0]["prose"].startswith("bulk line 7 ")
