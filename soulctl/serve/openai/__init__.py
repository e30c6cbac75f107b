"""The OpenAI-compatible API, one folder per surface (vLLM's `entrypoints/openai/` is the model):
each has its routes (`routes.py`), its request (`protocol.py`: a pydantic model, unknown fields
refused by name in one error shape) and its work (`serving.py`); every dialect's turn is the
same served turn (serve/turn.py). The app wires the surfaces listed here: a new surface is one
folder and one line."""

SURFACES = ("chat_completions", "responses", "embeddings", "models")
