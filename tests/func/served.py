"""A real `soulctl serve` for tests: the process on a free loopback port, raw HTTP to it."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BASE_ENV, REPO


class Served:
    """`soulctl serve` in a subprocess on a free port, up once it prints its address."""

    def __init__(self, home: Path, *args: str, log: Path):
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "soulctl", "serve", "--home", str(home), "--port", "0",
                                      *args], stdout=subprocess.PIPE, stderr=open(log, "w"), env=BASE_ENV,
                                     cwd=REPO, text=True)
        deadline = time.time() + 300
        while time.time() < deadline:
            if found := re.search(r"at http://127\.0\.0\.1:(\d+)/v1", log.read_text()):
                self.port = int(found.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.proc.kill()
        pytest.fail(f"serve did not start: {log.read_text()[-2000:]}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def http(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         read_timeout: float = 120) -> tuple[int, dict, bytes]:
    """One raw HTTP/1.1 exchange: (status, headers, body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    head = {"Host": f"127.0.0.1:{port}", "Connection": "close", **(headers or {})}
    if body is not None and "Content-Length" not in head and "Transfer-Encoding" not in head:
        head["Content-Length"] = str(len(body))
    sock.sendall((f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items())
                  + "\r\n").encode() + (body or b""))
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    sock.close()
    top, _, rest = raw.partition(b"\r\n\r\n")
    lines = top.decode().split("\r\n")
    status = int(lines[0].split()[1])
    got = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, got, rest


def error_of(status_body) -> dict:
    return json.loads(status_body[2])["error"]
