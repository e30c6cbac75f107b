"""The soul as a local service (DESIGN §7): an OpenAI-compatible HTTP API through the Memory OS
(api.py), the soul's tools over MCP (mcp.py), one engine queue for both (slot.py), and the
gate in front of them (gate.py: loopback or a bearer token, body size, no CORS unless asked)."""
