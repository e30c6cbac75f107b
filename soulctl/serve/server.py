"""`soulctl serve` as a library call: check the address against the token, bind, load the
model, run uvicorn on the bound socket until SIGINT or SIGTERM, stop gracefully."""

from __future__ import annotations

import signal
import socket
from typing import TYPE_CHECKING, Callable

from soulctl.errors import Unavailable, UsageError
from soulctl.serve.options import Ready, ServeOptions

if TYPE_CHECKING:
    from soulctl.soul import Soul


def serve(soul: Soul, options: ServeOptions, progress=None, warn=None,
          on_ready: Callable[[Ready], None] | None = None) -> str | None:
    """Serve until stopped; returns the signal that stopped it (SIGINT | SIGTERM)."""
    from soulctl.home.control import ServerLock
    from soulctl.serve.gate import is_loopback

    if not is_loopback(options.host) and options.token is None:
        raise UsageError(f"refusing to serve on {options.host} without a token: anyone who can reach it "
                         "could use the soul", hint="give --token-file FILE (or set SOULCTL_SERVE_TOKEN), or bind 127.0.0.1")
    lock = ServerLock(soul.home).acquire()  # one server per home, for as long as this one lives
    try:
        return _serve(soul, options, progress, warn, on_ready)
    finally:
        lock.release()


def _serve(soul: Soul, options: ServeOptions, progress, warn, on_ready) -> str | None:
    from soulctl.serve.app import create_app

    sock = listen(options.host, options.port)
    shown = f"[{options.host}]" if ":" in options.host else options.host
    base = f"http://{shown}:{sock.getsockname()[1]}"
    options.url = base + "/v1"
    try:
        from soulctl.memory.session import open_session
        from soulctl.tools import Toolbox

        chat = open_session(soul, strict=options.strict, warn=warn, progress=progress,
                            tools=Toolbox())  # the model loads now
        soul.embedder.encode(["warm"])
        app = create_app(soul, options)
    except BaseException:
        sock.close()
        raise
    if on_ready:
        on_ready(Ready(base + "/v1", base + "/mcp" if options.mcp else None, chat.generation,
                       chat.engine.name, chat.engine.context_length, options.token is not None))
    return run(app, sock, options.grace)


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket: from now on connections wait in the backlog, so a client
    that reads the address never meets a refused connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen on {host}:{port} ({exc.strerror})",
                          hint="pick another --port, or stop what is using it") from None
    return sock


def run(app, sock: socket.socket, grace: float) -> str | None:
    """Run uvicorn on the bound socket until SIGINT or SIGTERM, then stop gracefully. The
    signal uvicorn re-raises once it has stopped lands on a recorder, not on Python's default
    (which would kill the process before the soul is closed)."""
    import uvicorn

    import threading

    caught: list[str] = []
    previous = {sig: signal.signal(sig, lambda s, f: caught.append(signal.Signals(s).name))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    follower = getattr(getattr(app, "served", None), "follower", None)
    if follower is not None:  # SIGHUP: serve what `current` names now
        previous[signal.SIGHUP] = signal.signal(
            signal.SIGHUP, lambda s, f: threading.Thread(target=follower.follow, daemon=True).start())
    try:
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=grace, lifespan="on",
                                access_log=False, server_header=False)
        server = uvicorn.Server(config)
        if served := getattr(app, "served", None):  # long-lived feeds (the console's) end when a stop begins
            served.stopping = lambda: server.should_exit
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return caught[-1] if caught else None
