"""POST /v1/chat/completions, its request: the fields it honours (pydantic, unknown ones refused
by name) and what a turn is made of them."""

from __future__ import annotations

from typing import Any

from soulctl.serve.errors import BadRequest, text_of
from soulctl.serve.openai.protocol import Body, Sampling
from soulctl.serve.openai.tools import chat_offer, chat_results
from soulctl.serve.turn import json_format


class ChatCompletionRequest(Sampling, Body):
    SURFACE = "chat completions"

    model: str | None = None
    messages: list[Any]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    stop: str | list[Any] | None = None
    stream: bool | None = None
    stream_options: dict | None = None
    response_format: dict | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict | None = None
    functions: list[Any] | None = None  # refused with its new name, not as unknown
    parallel_tool_calls: bool | None = None
    user: str | None = None
    metadata: dict | None = None
    store: bool | None = None
    logprobs: bool | None = None
    service_tier: str | None = None


def chat_args(request: ChatCompletionRequest, soul_names: set[str]) -> dict:
    body = request.given()
    model = request.model
    if model and model not in soul_names:
        raise BadRequest(f"model {model!r} does not exist here; the soul is served as "
                         f"{', '.join(sorted(soul_names))} (see /v1/models)", "model", status=404)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    text, instructions = None, []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"'messages[{i}]' must be an object with a 'role'", f"messages[{i}]")
        if message["role"] == "user":
            text = text_of(message.get("content"), f"messages[{i}].content")
        elif message["role"] in ("system", "developer"):
            instructions.append(text_of(message.get("content"), f"messages[{i}].content"))
    if text is None or not text.strip():
        raise BadRequest("'messages' holds no user message with text: the last one is the turn", "messages")
    if request.n not in (None, 1):
        raise BadRequest("'n' must be 1: the soul gives one reply per turn", "n")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or len(stop) > 4
                             or not all(isinstance(s, str) and s for s in stop)):
        raise BadRequest("'stop' must be a string or a list of at most 4 non-empty strings", "stop")
    name = "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens"
    limit = getattr(request, name)
    if limit is not None and limit < 1:
        raise BadRequest(f"'{name}' must be a positive integer", name)
    if request.logprobs:
        raise BadRequest("'logprobs' must be false: no logprobs are served", "logprobs")
    if request.service_tier not in (None, "auto", "default"):
        raise BadRequest("'service_tier' must be auto or default: there is one tier, this machine", "service_tier")
    include_usage = (request.stream_options or {}).get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise BadRequest("'stream_options.include_usage' must be true or false", "stream_options.include_usage")
    return dict(text=text.strip(), stop=stop, max_tokens=limit,
                sampling={**request.sampling(), **json_format(request.response_format, "response_format")},
                stream=bool(request.stream), include_usage=include_usage,
                instructions="\n\n".join(instructions) or None,
                tools=chat_offer(body), results=chat_results(messages))


