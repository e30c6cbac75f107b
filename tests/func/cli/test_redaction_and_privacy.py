"""Secrets redacted in every line, a home's state private to its user, outputs honouring the
user's umask, ordinary bad input one line and never a traceback."""

from __future__ import annotations
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
import pytest
from conftest import BASE_ENV, REPO, copy_home, refused, soulctl


LINES = ["The heron waited at the edge of the marsh.", "The tide came in over the sand bar.",
         "A lantern hung from the orchard gate."]


@pytest.fixture(scope="module")
def logged(gen0_home, tmp_path_factory):
    """A home with a few packets; the tests that share it only read it (or are refused)."""
    home = copy_home(gen0_home, tmp_path_factory.mktemp("logged2") / "home")
    assert soulctl("log", "add", "--session", "h", "--home", home, input="\n".join(LINES) + "\n").code == 0
    return home


def digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def state_of(home: Path) -> dict:
    """The files a refused write must leave as they were."""
    return {p: digest(home / p) for p in ("data/soul.duckdb", "soul.yaml")}


class _EchoingServer(BaseHTTPRequestHandler):
    """A model server that echoes the bearer key it was sent in its 401, as some do."""

    def do_GET(self):
        key = self.headers.get("Authorization", "")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {key.split()[-1]} ({key})"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_urls_and_relayed_messages_are_redacted(home):
    import yaml

    data = yaml.safe_load((home / "soul.yaml").read_text())
    data["roles"]["soul"] = {"backend": "openai", "url": "http://soul:PASSWORD-SECRET@127.0.0.1:9/v1"}
    (home / "soul.yaml").write_text(yaml.safe_dump(data))
    unreachable = soulctl("chat", "hello", "--home", home)
    assert unreachable.code == 7 and "PASSWORD-SECRET" not in unreachable.stderr, unreachable
    assert "soul:***@127.0.0.1" in unreachable.stderr

    server = HTTPServer(("127.0.0.1", 0), _EchoingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        data["roles"]["soul"]["url"] = f"http://127.0.0.1:{server.server_port}/v1"
        (home / "soul.yaml").write_text(yaml.safe_dump(data))
        echoed = soulctl("chat", "hello", "-v", "--home", home, env={"OPENAI_API_KEY": "sk-live-0123456789abcdef"})
        assert echoed.code == 7, echoed
        assert "0123456789abcdef" not in echoed.stderr and "sk-***" in echoed.stderr, echoed.stderr
    finally:
        server.shutdown()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_homes_state_is_private_and_outputs_honour_the_umask(gen0_home, tmp_path):
    # gen0_home was made by `soulctl init` like any home
    assert mode(gen0_home / "data") == 0o700 and mode(gen0_home / "data" / "soul.duckdb") == 0o600
    for path in (gen0_home / "generations" / "gen-0000").iterdir():
        assert mode(path) & 0o277 == 0, path  # read-only, and private
    home = copy_home(gen0_home, tmp_path / "home")
    add = subprocess.run([sys.executable, "-m", "soulctl", "log", "add", "a heron", "--home", str(home)],
                         env=BASE_ENV, cwd=REPO, capture_output=True, preexec_fn=lambda: os.umask(0o022))
    assert add.returncode == 0
    for path in (home / "data").rglob("*"):
        assert mode(path) & 0o077 == 0, path
    for umask, expected in ((0o022, 0o644), (0o077, 0o600)):
        out = tmp_path / f"export-{umask:o}.jsonl"
        subprocess.run([sys.executable, "-m", "soulctl", "log", "export", "-o", str(out), "--home", str(home)],
                       env=BASE_ENV, cwd=REPO, check=True, preexec_fn=lambda u=umask: os.umask(u))
        assert mode(out) == expected


def test_ordinary_bad_input_is_one_line_not_a_traceback(logged, home):
    refused(soulctl("budget", "--ram", "0", "--home", logged), 5, "not a size a machine has")
    refused(soulctl("budget", "--ram", "0GiB", "--model", "smollm2-135m"), 5, "not a size a machine has")
    (home / "soul.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary")
    refused(soulctl("log", "ls", "--home", home), 5, "is not UTF-8 text")
    before = state_of(logged)
    refused(soulctl("log", "add", "--jsonl", "--home", logged, input='{"prose": "a\\ud800b"}\n'), 5,
            "line 1: `prose` holds a lone UTF-16 surrogate")
    refused(soulctl("log", "add", "--jsonl", "--home", logged, input='{"prose": "ok", "meta": {"k": "\\udfff"}}\n'),
            5, "line 1: `meta.k` holds a lone UTF-16 surrogate")
    refused(soulctl("log", "add", "x", "--meta", '{"k": "\\ud800"}', "--home", logged), 5, "lone UTF-16 surrogate")
    refused(soulctl("log", "add", "--jsonl", "--home", logged, input="[" * 50_000 + "]" * 50_000 + "\n"), 5,
            "nested too deeply")
    assert state_of(logged) == before
