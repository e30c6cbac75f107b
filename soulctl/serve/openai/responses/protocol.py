"""POST /v1/responses, its request: the fields the Responses API takes here (pydantic, unknown
ones refused by name) and what a turn is made of them."""

from __future__ import annotations

from typing import Any

from soulctl.serve.errors import BadRequest, field, text_of
from soulctl.serve.openai.protocol import Body, Sampling
from soulctl.serve.openai.tools import responses_offer, responses_results
from soulctl.serve.turn import json_format

# include values a response without reasoning or logprobs satisfies as it is
INCLUDABLE = {"reasoning.encrypted_content", "message.output_text.logprobs"}


class ResponsesRequest(Sampling, Body):
    SURFACE = "Responses API"

    model: str | None = None
    input: str | list[Any]
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    max_output_tokens: int | None = None
    stream: bool | None = None
    user: str | None = None
    metadata: dict | None = None
    text: dict | None = None
    parallel_tool_calls: bool | None = None
    truncation: str | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict | None = None
    reasoning: dict | None = None
    include: list[Any] | None = None
    prompt_cache_key: str | None = None
    client_metadata: dict | None = None
    stream_options: dict | None = None
    service_tier: str | None = None


def response_args(request: ResponsesRequest, soul_names: set[str]) -> dict:
    body = request.given()
    reasoning = field(body, "reasoning", dict, {}, why="an object")
    if reasoning.get("effort") not in (None, "none", "minimal"):
        raise BadRequest("'reasoning.effort' must be none or minimal: the soul does not reason before answering",
                         "reasoning.effort")
    include = field(body, "include", list, [], why="a list")
    if bad := [i for i in include if i not in INCLUDABLE]:
        raise BadRequest(f"'include' of {bad[0]!r} is not supported", "include")
    if "message.output_text.logprobs" in include:
        raise BadRequest("'include' of message.output_text.logprobs is not supported: no logprobs are served",
                         "include")
    if field(body, "service_tier", str, "auto", why="a string") not in ("auto", "default"):
        raise BadRequest("'service_tier' must be auto or default: there is one tier, this machine", "service_tier")
    model = field(body, "model", str, why="a string")
    if model and model not in soul_names:
        raise BadRequest(f"model {model!r} does not exist here; the soul is served as "
                         f"{', '.join(sorted(soul_names))} (see /v1/models)", "model", status=404)
    results = responses_results(body.get("input"))
    text, instructions = _input(body.get("input"), bool(results))
    given = field(body, "instructions", str, why="a string")
    fmt = field(body, "text", dict, {}, why="an object").get("format")
    if fmt is not None and not isinstance(fmt, dict):
        raise BadRequest("'text.format' must be an object", "text.format")
    field(body, "parallel_tool_calls", bool, False, why="true or false")
    if field(body, "truncation", str, "disabled", why="a string") not in ("disabled", "auto"):
        raise BadRequest("'truncation' must be disabled or auto (the Memory OS never overflows)", "truncation")
    previous = field(body, "previous_response_id", str, why="a string")
    metadata = field(body, "metadata", dict, {}, why="an object")
    return dict(text=text, instructions="\n\n".join([*([given] if given else []), *instructions]) or None,
                previous=previous, store=field(body, "store", bool, True, why="true or false"),
                max_tokens=field(body, "max_output_tokens", int, check=lambda v: v >= 1, why="a positive integer"),
                stream=field(body, "stream", bool, False, why="true or false"), metadata=metadata,
                sampling={**request.sampling(), **json_format(fmt, "text.format")},
                tools=responses_offer(body), results=results, format=fmt or {"type": "text"})


def _input(items, answers: bool) -> tuple[str | None, list[str]]:
    """The turn (the last user message) and the instructions among the input items; a request
    that `answers` a call (function_call_output items) needs no user message."""
    if isinstance(items, str):
        if not items.strip():
            raise BadRequest("'input' is empty", "input")
        return items.strip(), []
    if not isinstance(items, list) or not items:
        raise BadRequest("'input' must be a string or a non-empty list of message items", "input")
    text, instructions = None, []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"'{where}' must be an object", where)
        kind = item.get("type", "message")
        if kind in ("reasoning", "function_call", "function_call_output", "custom_tool_call",
                    "custom_tool_call_output", "web_search_call"):
            continue  # the client's record of earlier turns: the window is the session's own
        if kind != "message":
            raise BadRequest(f"'{where}.type' {kind!r} is not supported: only message items", f"{where}.type")
        role = item.get("role")
        if role == "user":
            text = text_of(item.get("content"), f"{where}.content")
        elif role in ("system", "developer"):
            instructions.append(text_of(item.get("content"), f"{where}.content"))
        elif role != "assistant":
            raise BadRequest(f"'{where}.role' must be user, assistant, system or developer", f"{where}.role")
    if answers and text is None:
        return None, instructions
    if text is None or not text.strip():
        raise BadRequest("'input' holds no user message with text: the last one is the turn", "input")
    return text.strip(), instructions


