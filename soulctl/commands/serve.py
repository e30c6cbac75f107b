"""soulctl serve / soulctl mcp: the soul as a local service (OpenAI-compatible API and MCP)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from soulctl.cli import state

HELP = """Serve the soul, with its memory, as an OpenAI-compatible API and an MCP server.

POST /v1/chat/completions is a Memory OS turn (streamed or not) on the session named by the
request's `user` field or an X-Soul-Session header; POST /v1/embeddings uses the log's
embedder; GET /v1/models, GET /health; MCP (streamable HTTP) at /mcp. Loopback only unless a
bearer token is given (--token-file, or SOULCTL_SERVE_TOKEN); no CORS unless --cors. The
model serves one request at a time: --queue more wait, the next gets 429 with Retry-After.
Ctrl-C or SIGTERM stops accepting, lets requests finish (a stream still running after
--grace seconds is cut, its partial reply logged as such) and the log's writes settle.

  soulctl serve --port 8710
  curl -s localhost:8710/v1/chat/completions -d '{"messages":[{"role":"user","content":"hello"}]}'
"""

MCP_HELP = """Serve the soul's tools over MCP on stdin/stdout (for Claude Code and other MCP clients).

Register it with Claude Code:  claude mcp add soul -- soulctl mcp --home ~/soul
stdout is the protocol; everything else goes to stderr.
"""


def run(
    host: Annotated[str, typer.Option(help="Address to bind (anything but loopback needs a token).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (0: any free one, printed).", min=0, max=65535)] = 8710,
    token_file: Annotated[Optional[Path], typer.Option("--token-file", help="A file holding the bearer token every route but /health requires.")] = None,
    cors: Annotated[Optional[List[str]], typer.Option("--cors", help="An origin allowed to call from a browser (repeat for more).")] = None,
    queue: Annotated[int, typer.Option(help="Requests that may wait for the model (the next gets 429).", min=1)] = 4,
    max_body: Annotated[str, typer.Option("--max-body", help="Largest request body (413 above).")] = "4MiB",
    grace: Annotated[float, typer.Option(help="Seconds a stop waits for running requests.", min=0)] = 30.0,
    mcp: Annotated[bool, typer.Option("--mcp/--no-mcp", help="Also serve MCP at /mcp.")] = True,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse to serve a generation whose files fail verification.")] = False,
) -> None:
    import socket

    from soulctl.errors import Unavailable, UsageError
    from soulctl.serve.gate import is_loopback, read_token
    from soulctl.units import parse_size

    out = state.out
    token = read_token(token_file)
    if not is_loopback(host) and token is None:
        raise UsageError(f"refusing to serve on {host} without a token: anyone who can reach it could use the soul",
                         hint="give --token-file FILE (or set SOULCTL_SERVE_TOKEN), or bind 127.0.0.1")
    body_limit = parse_size(max_body, "--max-body")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)  # from now on connections wait in the backlog until the server takes them
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen on {host}:{port} ({exc.strerror})",
                          hint="pick another --port, or stop what is using it") from None
    soul = state.soul()
    with out.progress_bars() as progress:  # load the model now: the first request should not wait for it
        chat = soul.session(strict=strict, warn=out.warn, progress=progress)
    soul.embedder.encode(["warm"])
    from soulctl.serve.api import create_app

    app = create_app(soul, token=token, cors=cors, max_body=body_limit, queue=queue, host=host, mcp=mcp)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    out.info(f"serving {chat.generation or 'the soul'} ({chat.engine.name}, context {chat.engine.context_length}) "
             f"at http://{shown}:{bound}/v1" + (f", MCP at http://{shown}:{bound}/mcp" if mcp else "")
             + (", token required" if token else "") + " — Ctrl-C to stop")
    stopped = _serve(app, sock, grace)
    out.info(f"stopped ({stopped})" if stopped else "stopped")


def _serve(app, sock, grace: float) -> str | None:
    """Run uvicorn on the bound socket until SIGINT or SIGTERM, then stop gracefully. The
    signal uvicorn re-raises once it has stopped lands on a recorder, not on Python's default
    (which would kill the process before the soul is closed)."""
    import uvicorn

    caught: list[str] = []
    previous = {sig: signal.signal(sig, lambda s, f: caught.append(signal.Signals(s).name))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=grace, lifespan="on",
                                access_log=False, server_header=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return caught[-1] if caught else None


def mcp() -> None:
    from soulctl.serve.mcp import run_stdio

    run_stdio(state.soul())
