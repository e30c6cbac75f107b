"""POST /v1/embeddings, its request: the texts to embed with the log's embedder (pydantic,
unknown fields refused by name)."""

from __future__ import annotations

from typing import Any

from soulctl.serve.errors import BadRequest
from soulctl.serve.openai.protocol import Body

MAX_EMBED_INPUTS = 2048


class EmbeddingsRequest(Body):
    SURFACE = "embeddings"

    input: str | list[Any]
    model: str | None = None
    encoding_format: str | None = None
    dimensions: int | None = None
    user: str | None = None


def embed_args(request: EmbeddingsRequest, names: set[str], embedder) -> tuple[list[str], str]:
    model = request.model
    if model and model not in names:
        raise BadRequest(f"model {model!r} does not exist here; the embedder is {embedder.model_id} "
                         f"(also: {', '.join(sorted(names - {embedder.model_id}))})", "model", status=404)
    texts = request.input
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest("'input' must be a string or a non-empty list of strings "
                         "(token arrays are not accepted)", "input")
    if len(texts) > MAX_EMBED_INPUTS:
        raise BadRequest(f"'input' holds {len(texts)} texts; at most {MAX_EMBED_INPUTS}", "input")
    if any(not t.strip() for t in texts):
        raise BadRequest("'input' holds an empty text", "input")
    fmt = request.encoding_format or "float"
    if fmt not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dims = request.dimensions
    if dims is not None and dims != embedder.dim:
        raise BadRequest(f"this embedder gives {embedder.dim} dimensions, not {dims}", "dimensions")
    return texts, fmt
