"""POST /v1/responses and GET /v1/responses/{id}, their routes."""

from fastapi import APIRouter, Request

from soulctl.serve.openai.responses import serving

router = APIRouter()


@router.post("/v1/responses")
async def create(request: Request):
    return await serving.create(request)


@router.get("/v1/responses/{response_id}")
async def read(request: Request, response_id: str):
    return await serving.read(request, response_id)
