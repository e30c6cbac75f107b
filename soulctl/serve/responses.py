"""POST /v1/responses and GET /v1/responses/{id}: OpenAI's Responses API, one Memory OS turn.

`input` is a string or a list of message items; its last user message is the turn (earlier
items are accepted and not used: the window is the session's own). `instructions`, and system
or developer items, are the client's instructions, placed as in chat completions.
`previous_response_id` continues that response's soul session; otherwise the session is `user`,
the X-Soul-Session header, or a new one. A stored response (`store`, the default) is kept in
data/responses/ and read back by GET. Streaming sends the documented events: response.created,
response.in_progress, response.output_item.added, response.content_part.added,
response.output_text.delta …, response.output_text.done, response.content_part.done,
response.output_item.done, response.completed (or response.incomplete). Fields the soul does
not honour are refused by name (400), never ignored.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from soulctl.serve.chat import json_format, sampling_args, served_turn, soul_fields
from soulctl.serve.context import SESSION_HEADER
from soulctl.serve.errors import BadRequest, failure, field, text_of
from soulctl.serve.streaming import sse, stream_turn
from soulctl.serve.tools import responses_offer, responses_results

router = APIRouter()

ACCEPTED = {"model", "input", "instructions", "previous_response_id", "store", "max_output_tokens", "stream",
            "user", "metadata", "text", "temperature", "top_p", "seed", "top_k", "min_p", "repeat_penalty",
            "frequency_penalty", "presence_penalty", "parallel_tool_calls", "truncation", "tools", "tool_choice",
            "reasoning", "include", "prompt_cache_key", "client_metadata", "stream_options", "service_tier"}
# include values a response without reasoning or logprobs satisfies as it is
INCLUDABLE = {"reasoning.encrypted_content", "message.output_text.logprobs"}
RESPONSE_ID = re.compile(r"^resp_[0-9a-f]{32}$")


@router.post("/v1/responses")
async def create(request: Request):
    served = request.app.state.served
    try:
        body = await served.read_json(request)
        args = response_args(body, served.soul_names())
        owner = principal(request, body.get("user"))
        session = (_stored(served, args["previous"], owner)["soul"]["session"] if args["previous"]
                   else served.session_of(request, body, calls=args["results"], calls_field="input"))
    except Exception as exc:
        return failure(exc)
    headers = {SESSION_HEADER: session}
    record = {"id": "resp_" + uuid.uuid4().hex, "object": "response", "created_at": int(time.time()),
              "status": "in_progress", "model": served.soul_id, "output": [], "usage": None,
              "instructions": args["instructions"], "previous_response_id": args["previous"],
              "max_output_tokens": args["max_tokens"], "store": args["store"], "metadata": args["metadata"],
              "temperature": args["sampling"].get("temperature"), "top_p": args["sampling"].get("top_p"),
              "tools": body.get("tools") or [], "tool_choice": body.get("tool_choice") or "auto",
              "parallel_tool_calls": False, "truncation": "disabled",
              "text": {"format": args["format"]}, "error": None, "incomplete_details": None, "user": owner}

    def turn(on_token=None):
        result = served_turn(served, session, args, headers, on_token)
        record["model"] = result.generation or served.soul_id
        return result

    if args["stream"]:
        return await stream_turn(served.slot, turn, headers, Events(record, session, served))
    try:
        result = await served.slot.engine(turn)
    except Exception as exc:
        response = failure(exc)
        response.headers.update(headers)
        return response
    return JSONResponse(_finish(record, session, result, served), headers=headers)


@router.get("/v1/responses/{response_id}")
async def read(request: Request, response_id: str):
    try:
        owner = principal(request, request.query_params.get("user"))
        return JSONResponse(_stored(request.app.state.served, response_id, owner))
    except Exception as exc:
        return failure(exc)


def response_args(body: dict, soul_names: set[str]) -> dict:
    if unknown := sorted(set(body) - ACCEPTED):
        raise BadRequest(f"'{unknown[0]}' is not supported by the soul's Responses API", unknown[0])
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
                sampling={**sampling_args(body), **json_format(fmt, "text.format")},
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


def _finish(record: dict, session: str, result, served, item: str | None = None) -> dict:
    """The response object for a finished turn (kept when `store`)."""
    message = {"type": "message", "id": item or "msg_" + uuid.uuid4().hex, "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": result.reply, "annotations": []}]}
    cut = result.finish_reason == "length"
    output = [message] if result.reply or not result.calls else []
    record.update(status="incomplete" if cut else "completed", output=output + function_calls(result),
                  incomplete_details={"reason": "max_output_tokens"} if cut else None,
                  usage={"input_tokens": result.prompt_tokens, "output_tokens": result.completion_tokens,
                         "total_tokens": result.prompt_tokens + result.completion_tokens,
                         "input_tokens_details": {"cached_tokens": 0},
                         "output_tokens_details": {"reasoning_tokens": 0}},
                  soul=soul_fields(session, result))
    if record["store"]:
        _keep(served, record)
    return record


def _folder(served):
    return served.soul.home.data / "responses"


def _keep(served, record: dict) -> None:
    folder = _folder(served)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['id']}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(record, ensure_ascii=False))
    os.replace(tmp, path)


def principal(request: Request, user) -> str | None:
    """Who asks: the request's `user`, else its X-Soul-Session header; None for a caller who
    names neither. With a token every caller is one key, so this is what tells them apart."""
    return (user if isinstance(user, str) and user else None) or request.headers.get(SESSION_HEADER) or None


def _stored(served, response_id: str, owner: str | None) -> dict:
    """A stored response, for the principal that made it only: to anyone else it does not
    exist (404, the same answer as for an id never made)."""
    path = _folder(served) / f"{response_id}.json"
    missing = BadRequest(f"no stored response {response_id!r} for this user (a response is read and continued "
                         "under the `user` or X-Soul-Session that made it; one made with store: false is not "
                         "kept)", "previous_response_id", status=404)
    if not RESPONSE_ID.match(response_id) or not path.is_file():
        raise missing
    record = json.loads(path.read_text())
    if record.get("user") != owner:
        raise missing
    return record


def function_calls(result) -> list[dict]:
    """The client's calls to make, as function_call output items (their ids kept on the call)."""
    return [{"type": "function_call", "id": c.setdefault("item", "fc_" + uuid.uuid4().hex), "call_id": c["id"],
             "name": c["name"], "arguments": c["arguments"], "status": "completed"} for c in result.calls]


class Events:
    """The Responses stream: typed events, each with its sequence number. The message item
    opens with the first piece of text (a turn that only calls a client's tools has none)."""

    def __init__(self, record: dict, session: str, served):
        self.record, self.session, self.served = record, session, served
        self.seq, self.text, self.open = 0, "", False
        self.item = "msg_" + uuid.uuid4().hex

    def _event(self, kind: str, **payload) -> str:
        self.seq += 1
        return sse({"type": kind, "sequence_number": self.seq - 1, **payload}, event=kind)

    def _part(self, text: str) -> dict:
        return {"type": "output_text", "text": text, "annotations": []}

    def _message(self, status: str, text: str | None) -> dict:
        return {"type": "message", "id": self.item, "status": status, "role": "assistant",
                "content": [] if text is None else [self._part(text)]}

    def _open_message(self):
        if not self.open:
            self.open = True
            yield self._event("response.output_item.added", output_index=0, item=self._message("in_progress", None))
            yield self._event("response.content_part.added", item_id=self.item, output_index=0, content_index=0,
                              part=self._part(""))

    def opening(self):
        yield self._event("response.created", response=dict(self.record))
        yield self._event("response.in_progress", response=dict(self.record))

    def piece(self, text: str):
        yield from self._open_message()
        self.text += text
        yield self._event("response.output_text.delta", item_id=self.item, output_index=0, content_index=0,
                          delta=text, logprobs=[])

    def closing(self, result):
        record = _finish(self.record, self.session, result, self.served, self.item)
        message = bool(result.reply) or not result.calls  # as _finish puts it first in the output
        if message:
            text = result.reply
            if not self.text and text:  # said before its calls, not streamed
                yield from self.piece(text)
            yield from self._open_message()
            yield self._event("response.output_text.done", item_id=self.item, output_index=0, content_index=0,
                              text=text, logprobs=[])
            yield self._event("response.content_part.done", item_id=self.item, output_index=0, content_index=0,
                              part=self._part(text))
            yield self._event("response.output_item.done", output_index=0, item=record["output"][0])
        first = 1 if message else 0
        for index, item in enumerate(record["output"][first:], first):
            yield self._event("response.output_item.added", output_index=index, item={**item, "arguments": "",
                                                                                       "status": "in_progress"})
            yield self._event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                              delta=item["arguments"])
            yield self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                              arguments=item["arguments"])
            yield self._event("response.output_item.done", output_index=index, item=item)
        done = "response.incomplete" if record["status"] == "incomplete" else "response.completed"
        yield self._event(done, response=record)

    def failed(self, error: dict):
        failed = {**self.record, "status": "failed", "error": {"code": "server_error",
                                                                "message": error.get("error", {}).get("message", "")}}
        yield self._event("response.failed", response=failed)
