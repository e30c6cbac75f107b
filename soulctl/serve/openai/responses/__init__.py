"""OpenAI's Responses API: routes.py, protocol.py (the request), serving.py (the turn, the stream, stored responses)."""
