"""POST /v1/chat/completions, its route."""

from fastapi import APIRouter, Request

from soulctl.serve.openai.chat_completions import serving

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request):
    return await serving.create(request)
