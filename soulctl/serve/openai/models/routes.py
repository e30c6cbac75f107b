"""GET /v1/models (the soul as its generation's id, and the embedder) and GET /health, their
routes and work (no request body: nothing to model)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

router = APIRouter()


@router.get("/health")
async def health(request: Request):
    served = request.app.state.served
    return {"status": "stopping" if served.slot.closing else "released" if served.released else "ok",
            "model": served.soul_id, "queued": served.slot.waiting, "queue_limit": served.slot.limit}


@router.get("/v1/models")
async def models(request: Request):
    served = request.app.state.served
    embedder = served.soul.embedder
    created = int(time.time())
    about = {"role": "soul", "generation": served.generation, "released": served.released}
    if not served.released:
        engine = served.engine
        about.update(backend=engine.name, context=engine.context_length)
    return {"object": "list", "data": [
        {"id": served.soul_id, "object": "model", "created": created, "owned_by": "soulctl", "soul": about},
        {"id": embedder.model_id, "object": "model", "created": created, "owned_by": "soulctl",
         "soul": {"role": "embedder", "dim": embedder.dim}}]}
