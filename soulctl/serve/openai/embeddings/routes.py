"""POST /v1/embeddings, its route."""

from fastapi import APIRouter, Request

from soulctl.serve.openai.embeddings import serving

router = APIRouter()


@router.post("/v1/embeddings")
async def embeddings(request: Request):
    return await serving.create(request)
