"""MCP (DESIGN §7), beside the OpenAI-compatible surfaces: the server with the soul's tools,
resources and prompt (server.py), served over streamable HTTP at /mcp by `serve` and over
stdio by `soulctl mcp` (stdio.py: a wire that answers every line)."""

from soulctl.serve.mcp.server import build_server, hidden_tools, http_routes, read, run_stdio

__all__ = ["build_server", "hidden_tools", "http_routes", "read", "run_stdio"]
