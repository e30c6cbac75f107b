"""The soul's console: a local web page beside the API (`serve`, at `/`; `--no-console` turns it
off). Five pages rendered on the server from the library the CLI uses — Now (live), Lineage,
Memory, Resonance, Chat — with charts drawn as SVG, templates shipped in the wheel, one small
script for the live feed, nothing fetched from anywhere. guard.py: who may see it and act
through it; views.py: what each page reads; pages.py: the routes; resonance.py: the map;
svg.py: the charts."""

API_PREFIXES = ("/v1", "/mcp", "/health")


def is_console_path(path: str) -> bool:
    """Whether a request is the console's (every path the API and MCP do not own)."""
    return not any(path == p or path.startswith(p + "/") for p in API_PREFIXES)
