"""OpenAI's embeddings: routes.py, protocol.py (the request), serving.py (the vectors)."""
