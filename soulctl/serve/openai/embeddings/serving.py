"""POST /v1/embeddings, its work: the log's embedder — the very vectors `log add` stores."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import Request

from soulctl.serve.errors import failure
from soulctl.serve.openai.embeddings.protocol import EmbeddingsRequest, embed_args


async def create(request: Request):
    served = request.app.state.served
    embedder = served.soul.embedder
    try:
        body = EmbeddingsRequest.parse(await served.read_json(request))
        texts, fmt = embed_args(body, served.embed_names(), embedder)
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
