"""One server per home, known by a lock rather than a pid; a control channel that bounds what
it reads and the leases it grants."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from conftest import refused, soulctl
from tests.func.served import Served


def ask_raw(home, payload: bytes, timeout: float = 30) -> dict | None:
    state = json.loads((home / "data" / "serve.json").read_text())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(state["socket"])
    try:
        sock.sendall(payload)
        raw = b""
        while not raw.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    except (BrokenPipeError, ConnectionResetError):
        return None
    finally:
        sock.close()
    return json.loads(raw) if raw.strip() else None


def test_a_second_server_is_refused_while_the_first_lives_and_takes_over_when_it_dies(home, tmp_path):
    first = Served(home, log=tmp_path / "first.log")
    try:
        second = soulctl("--home", home, "serve", "--port", "0", process=True, timeout=120)
        refused(second, 7, "a server already serves this home")
        assert f"pid {first.proc.pid}" in second.stderr
        # the first keeps its channel: status, and its announcement, are still its own
        status = soulctl("--home", home, "--json", "status").json()
        assert status["server"]["running"] and status["server"]["pid"] == first.proc.pid
        assert json.loads((home / "data" / "serve.json").read_text())["pid"] == first.proc.pid
        assert soulctl("--home", home, "--json", "status").json()["server"]["generation"] == "gen-0000"
    finally:
        first.proc.kill()  # SIGKILL: no clean stop, the announcement stays behind
        first.proc.wait(60)
    assert (home / "data" / "serve.json").exists()
    assert soulctl("--home", home, "--json", "status").json()["server"] == {"running": False}
    third = Served(home, log=tmp_path / "third.log")
    try:
        status = soulctl("--home", home, "--json", "status").json()
        assert status["server"]["running"] and status["server"]["pid"] == third.proc.pid
    finally:
        assert third.stop() == 0
    assert not (home / "data" / "serve.json").exists()


def test_a_reused_pid_is_not_a_running_server(home):
    """An announcement naming a live process that holds no lock (the pid was reused)."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for pid in (sleeper.pid, os.getpid()):
            (home / "data" / "serve.json").write_text(json.dumps(
                {"pid": pid, "url": "http://127.0.0.1:9/v1", "socket": str(home / "data" / "serve.sock")}))
            status = soulctl("--home", home, "--json", "status").json()
            assert status["server"] == {"running": False}
            # gen use does not wait on a server that is not there
            used = soulctl("--home", home, "--json", "gen", "use", "gen-0000")
            assert used.code == 0 and used.json()["served"] is None
    finally:
        sleeper.kill()


def test_the_control_channel_bounds_leases_and_messages(home, tmp_path):
    served = Served(home, log=tmp_path / "serve.log")
    try:
        for bad in (b'{"op": "release", "lease": NaN}\n', b'{"op": "release", "lease": 1e308}\n',
                    b'{"op": "release", "lease": Infinity}\n', b'{"op": "release", "lease": "60"}\n',
                    b'{"op": "renew", "lease": -5}\n', b'{"op": "release", "holder": 1.5e300}\n'):
            answer = ask_raw(home, bad)
            assert answer["ok"] is False and ("must be a number" in answer["error"]), (bad, answer)
        # 300 MiB with no newline: cut off unread past the bound, the server unharmed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(json.loads((home / "data" / "serve.json").read_text())["socket"])
        sock.settimeout(30)
        sent, block = 0, b"x" * (1 << 20)
        try:
            while sent < 300 << 20:
                sock.sendall(block)
                sent += len(block)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        sock.close()
        assert sent < 300 << 20, "the server read 300 MiB without a newline"
        status = ask_raw(home, b'{"op": "status"}\n')
        assert status["ok"] and status["released"] is False and status["generation"] == "gen-0000"
        # a turn is still answered: nothing was released by a refused lease
        turn = soulctl("--home", home, "--json", "status").json()
        assert turn["server"]["released"] is False
    finally:
        assert served.stop() == 0
