"""The running server's control channel: a unix socket private to the home's user, spoken in
JSON lines by `gen use`, `evolve`, `soulctl status` and `service status`.

One server per home: `serve` holds an exclusive lock on `data/serve.lock` (flock) for its whole
life, and a second one is refused while it is held. Whether a server runs is asked of that lock,
never of a pid (a pid is reused by other processes; a lock dies with its holder). The holder
announces itself in `data/serve.json` (its pid, URL, socket and start); the socket lives in
`data/` (0700) or, where that path is too long for a unix socket, in a private folder of the
user's own under the temporary directory. One request per connection, at most MAX_MESSAGE
bytes: `{"op": ...}` → one JSON reply. A home with no server answers None.
"""

from __future__ import annotations

import errno
import fcntl
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

from soulctl.errors import Unavailable
from soulctl.home import Home

log = logging.getLogger(__name__)

STATE = "serve.json"
LOCK = "serve.lock"
SOCKET_MAX = 100  # bytes of a unix socket's path, with room under the platforms' 104/108
MAX_MESSAGE = 64 * 1024  # one request or reply on the channel; a longer one is refused unread


class AlreadyServing(Unavailable):
    """A second `serve` on a home whose server is alive (exit 7)."""


class ServerLock:
    """The lock a server holds on its home for its whole life (released by the kernel when the
    process dies, however it dies)."""

    def __init__(self, home: Home):
        self.home, self.path = home, home.data / LOCK
        self._fd: int | None = None

    def acquire(self) -> "ServerLock":
        self.home.data.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            state = _announced(self.home) or {}
            where = ", ".join(f"{k} {state[k]}" for k in ("pid", "url") if state.get(k))
            raise AlreadyServing(f"a server already serves this home{f' ({where})' if where else ''}",
                                 hint="stop it first (Ctrl-C, SIGTERM or `soulctl service remove`), "
                                      "or serve another home") from None
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def held(home: Home) -> bool:
    """Whether a live server holds this home's lock (asked without creating anything)."""
    try:
        fd = os.open(home.data / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _announced(home: Home) -> dict | None:
    try:
        state = json.loads((home.data / STATE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def socket_path(home: Home) -> Path:
    path = home.data / "serve.sock"
    if len(str(path).encode()) < SOCKET_MAX:
        return path
    private = Path(tempfile.gettempdir()) / f"soulctl-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    return private / (hashlib.sha256(str(home.root).encode()).hexdigest()[:16] + ".sock")


def running(home: Home) -> dict | None:
    """The server running in this home, as it announced itself (just {} while it starts);
    None when no server holds the home's lock."""
    if not held(home):
        return None
    return _announced(home) or {}


def ask(home: Home, request: dict, timeout: float = 30.0) -> dict | None:
    """Send `request` to the running server and return its answer; None when no server runs
    (or it died, or stopped answering within `timeout`)."""
    state = running(home)
    if not state or not isinstance(state.get("socket"), str):
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
        if self.path.exists():  # a server that died left it (this one holds the home's lock)
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
                conn.settimeout(30)
                raw = _read_line(conn)
                if not raw.endswith(b"\n"):
                    return  # the client left before its request was whole, or sent too much
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
    """One newline-ended message of at most MAX_MESSAGE bytes (shorter when the other side
    closes first; cut, without its newline, when it would be longer)."""
    raw = b""
    while not raw.endswith(b"\n"):
        chunk = sock.recv(min(65536, MAX_MESSAGE + 1 - len(raw)))
        if not chunk:
            break
        raw += chunk
        if len(raw) > MAX_MESSAGE:
            return raw[:MAX_MESSAGE]
    return raw
