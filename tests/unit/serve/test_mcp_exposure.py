"""invoke_agent offered over MCP only where the soul trusts the client (hands.expose)."""

import pytest

from soulctl.home.config import parse_config
from soulctl.serve.mcp import hidden_tools


@pytest.mark.parametrize("expose,transport,token,hidden", [
    ("auto", "stdio", None, False), ("auto", "http", None, True), ("auto", "http", "t" * 16, False),
    ("true", "http", None, False), ("false", "stdio", None, True), ("false", "http", "t" * 16, True),
])
def test_invoke_agent_is_offered_only_where_the_client_is_trusted(expose, transport, token, hidden):
    config = parse_config(f"hands:\n  expose: {expose}\n")
    assert ("invoke_agent" in hidden_tools(config, transport, token)) is hidden
