"""soulctl serve / soulctl mcp: the soul as a local service (OpenAI-compatible API and MCP)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from soulctl.cli import state

HELP = """Serve the soul, with its memory, as an OpenAI-compatible API and an MCP server.

POST /v1/chat/completions is a Memory OS turn (streamed or not) on the session named by the
request's `user` field or an X-Soul-Session header; POST /v1/embeddings uses the log's
embedder; GET /v1/models, GET /health; MCP (streamable HTTP) at /mcp; the console, a web page
of the soul's state, lineage, memory, resonance and a chat, at / (--no-console: none). Loopback only unless a
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
    console: Annotated[bool, typer.Option("--console/--no-console", help="Also serve the console (a web page) at /.")] = True,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse to serve a generation whose files fail verification.")] = False,
) -> None:
    from soulctl.serve.gate import read_token
    from soulctl.serve.server import ServeOptions, serve
    from soulctl.units import parse_size

    out = state.out
    options = ServeOptions(host=host, port=port, token=read_token(token_file), cors=cors or [], queue=queue,
                           max_body=parse_size(max_body, "--max-body"), grace=grace, mcp=mcp, console=console, strict=strict,
                           say=lambda line: out.info(f"serve: {line}"))

    def ready(r) -> None:
        out.info(f"serving {r.generation or 'the soul'} ({r.backend}, context {r.context}) at {r.url}"
                 + (f", MCP at {r.mcp_url}" if r.mcp_url else "")
                 + (f", console at {r.url[:-3]}/" if options.console else "") + (", token required" if r.token else "")
                 + " — Ctrl-C to stop")

    with out.progress_bars() as progress:  # the model loads before the first request
        stopped = serve(state.soul(), options, progress, out.warn, ready)
    out.info(f"stopped ({stopped})" if stopped else "stopped")


def mcp() -> None:
    from soulctl.serve.mcp import run_stdio

    run_stdio(state.soul())
