"""POST /v1/responses and GET /v1/responses/{id}: OpenAI's Responses API, one Memory OS turn.

`input` is a string or a list of message items; its last user message is the turn (earlier
items are accepted and not used: the window is the session's own). `instructions`, and system
or developer items, are the client's instructions, placed as in chat completions.
`previous_response_id` continues that response's soul session (only for the `user` that made it); otherwise the session is `user`,
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

from fastapi import Request
from starlette.responses import JSONResponse

from soulctl.serve.context import SESSION_HEADER
from soulctl.serve.errors import BadRequest, failure
from soulctl.serve.openai.responses.protocol import ResponsesRequest, response_args
from soulctl.serve.streaming import sse, stream_turn
from soulctl.serve.turn import served_turn, soul_fields

RESPONSE_ID = re.compile(r"^resp_[0-9a-f]{32}$")


async def create(request: Request):
    served = request.app.state.served
    try:
        body = ResponsesRequest.parse(await served.read_json(request))
        args = response_args(body, served.soul_names())
        owner = principal(request, body.user)
        session = (_stored(served, args["previous"], owner)["soul"]["session"] if args["previous"]
                   else served.session_of(request, body.user, calls=args["results"], calls_field="input"))
    except Exception as exc:
        return failure(exc)
    headers = {SESSION_HEADER: session}
    record = {"id": "resp_" + uuid.uuid4().hex, "object": "response", "created_at": int(time.time()),
              "status": "in_progress", "model": served.soul_id, "output": [], "usage": None,
              "instructions": args["instructions"], "previous_response_id": args["previous"],
              "max_output_tokens": args["max_tokens"], "store": args["store"], "metadata": args["metadata"],
              "temperature": args["sampling"].get("temperature"), "top_p": args["sampling"].get("top_p"),
              "tools": body.tools or [], "tool_choice": body.tool_choice or "auto",
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


async def read(request: Request, response_id: str):
    try:
        owner = principal(request, request.query_params.get("user"))
        return JSONResponse(_stored(request.app.state.served, response_id, owner))
    except Exception as exc:
        return failure(exc)


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
