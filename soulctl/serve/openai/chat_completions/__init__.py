"""OpenAI's chat completions: routes.py, protocol.py (the request), serving.py (the turn)."""
