"""The running server's control channel: a unix socket private to the home's user, spoken in
JSON lines by `gen use`, `evolve`, `soulctl status` and `service status`.

`data/serve.json` says a server runs in this home (its pid, URL, socket and start); the socket
lives in `data/` (0700) or, where that path is too long for a unix socket, in a private folder
of the user's own under the temporary directory. One request per connection:
`{"op": ...}` → one JSON reply. A home with no server, or one whose server died, answers None.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from soulctl.home import Home
from soulctl.processes import alive

log = logging.getLogger(__name__)

STATE = "serve.json"
SOCKET_MAX = 100  # bytes of a unix socket's path, with room under the platforms' 104/108


def socket_path(home: Home) -> Path:
    path = home.data / "serve.sock"
    if len(str(path).encode()) < SOCKET_MAX:
        return path
    private = Path(tempfile.gettempdir()) / f"soulctl-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    return private / (hashlib.sha256(str(home.root).encode()).hexdigest()[:16] + ".sock")


def running(home: Home) -> dict | None:
    """The server running in this home, as it announced itself; None when there is none."""
    try:
        state = json.loads((home.data / STATE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not alive(int(state.get("pid", 0))):
        return None
    return state


def ask(home: Home, request: dict, timeout: float = 30.0) -> dict | None:
    """Send `request` to the running server and return its answer; None when no server runs
    (or it died, or stopped answering within `timeout`)."""
    state = running(home)
    if state is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(state["socket"])
        sock.sendall(json.dumps(request).encode() + b"\n")
        raw = _read_line(sock)
        return json.loads(raw) if raw.strip() else None
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


class ControlServer:
    """In the server: answers requests on the socket, one thread per connection, each request
    handed to `handle(request) -> reply` (which may take as long as a switch of generation)."""

    def __init__(self, home: Home, handle: Callable[[dict], dict], announce: dict):
        self.home, self.handle, self.announce = home, handle, announce
        self.path = socket_path(home)
        self._sock: socket.socket | None = None

    def start(self) -> None:
        self.home.data.mkdir(parents=True, exist_ok=True)
        if self.path.exists():  # a server that died left it; a live one would still be in serve.json
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        sock.listen(16)
        self._sock = sock
        state = {**self.announce, "pid": os.getpid(), "socket": str(self.path), "since": time.time()}
        tmp = self.home.data / f".{STATE}.{os.getpid()}"
        tmp.write_text(json.dumps(state) + "\n")
        os.replace(tmp, self.home.data / STATE)
        threading.Thread(target=self._accept, name="soulctl-control", daemon=True).start()

    def _accept(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                raw = _read_line(conn)
                if not raw.endswith(b"\n"):
                    return  # the client left before its request was whole
                request = json.loads(raw)
                reply = self.handle(request if isinstance(request, dict) else {})
            except Exception as exc:  # a bad request must not stop the channel
                log.warning("control request failed: %s", exc)
                reply = {"ok": False, "error": str(exc)}
            try:
                conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
            except OSError:
                pass

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        try:
            state = json.loads((self.home.data / STATE).read_text())
            if state.get("pid") == os.getpid():
                (self.home.data / STATE).unlink()
        except (OSError, ValueError):
            pass
        self.path.unlink(missing_ok=True)


def _read_line(sock: socket.socket) -> bytes:
    """One newline-ended message (shorter when the other side closes first)."""
    raw = b""
    while not raw.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        raw += chunk
    return raw
