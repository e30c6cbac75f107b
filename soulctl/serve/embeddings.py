"""POST /v1/embeddings: the log's embedder — the very vectors `log add` stores."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Request

from soulctl.serve.errors import BadRequest, failure, field

router = APIRouter()

MAX_EMBED_INPUTS = 2048


@router.post("/v1/embeddings")
async def embeddings(request: Request):
    served = request.app.state.served
    embedder = served.soul.embedder
    try:
        body = await served.read_json(request)
        texts, fmt = _args(body, served.embed_names(), embedder)
        vectors, tokens = await served.slot.memory(lambda: (embedder.encode(texts), embedder.count_tokens(texts)))
    except Exception as exc:
        return failure(exc)
    data = []
    for i, vector in enumerate(vectors):
        value = (base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode() if fmt == "base64"
                 else [float(x) for x in vector])
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": embedder.model_id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _args(body: dict, names: set[str], embedder) -> tuple[list[str], str]:
    model = field(body, "model", str, why="a string")
    if model and model not in names:
        raise BadRequest(f"model {model!r} does not exist here; the embedder is {embedder.model_id} "
                         f"(also: {', '.join(sorted(names - {embedder.model_id}))})", "model", status=404)
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest("'input' must be a string or a non-empty list of strings "
                         "(token arrays are not accepted)", "input")
    if len(texts) > MAX_EMBED_INPUTS:
        raise BadRequest(f"'input' holds {len(texts)} texts; at most {MAX_EMBED_INPUTS}", "input")
    if any(not t.strip() for t in texts):
        raise BadRequest("'input' holds an empty text", "input")
    fmt = field(body, "encoding_format", str, "float", lambda v: v in ("float", "base64"), "'float' or 'base64'")
    dims = field(body, "dimensions", int, why="an integer")
    if dims is not None and dims != embedder.dim:
        raise BadRequest(f"this embedder gives {embedder.dim} dimensions, not {dims}", "dimensions")
    return texts, fmt
