"""POST /v1/chat/completions, its work: one Memory OS turn.

The last user message of the request is the turn; the soul's self-definition, notebook,
retrieved memory and window come from its memory, not from the request (earlier user and
assistant messages are accepted and not used — the window is the session's own, rebuilt from
the log). A client's tools and the results of their calls: serve/openai/tools.py. System (and
developer) messages are the client's instructions: placed after the notebook, within half the
retrieved sector, and the response's `soul.instructions` says what was used. The session is the
request's `user`, else an `X-Soul-Session` header, else a new one; the response names it in
`X-Soul-Session`. Turns are logged exactly as `soulctl chat` logs them.
"""

from __future__ import annotations

import time
import uuid

from fastapi import Request
from starlette.responses import JSONResponse

from soulctl.serve.context import SESSION_HEADER
from soulctl.serve.errors import failure
from soulctl.serve.openai.chat_completions.protocol import ChatCompletionRequest, chat_args
from soulctl.serve.streaming import sse, stream_turn
from soulctl.serve.turn import served_turn, soul_fields


async def create(request: Request):
    served = request.app.state.served
    try:
        body = ChatCompletionRequest.parse(await served.read_json(request))
        args = chat_args(body, served.soul_names())
        session = served.session_of(request, body.user, calls=args["results"])
    except Exception as exc:
        return failure(exc)
    headers = {SESSION_HEADER: session}
    base = dict(id=f"chatcmpl-{uuid.uuid4().hex}", object="chat.completion.chunk", created=int(time.time()),
                model=served.soul_id)

    def turn(on_token=None):
        result = served_turn(served, session, args, headers, on_token)
        base["model"] = result.generation or served.soul_id
        return result

    if args["stream"]:
        return await stream_turn(served.slot, turn, headers, Chunks(base, session, args["include_usage"]))
    try:
        result = await served.slot.engine(turn)
    except Exception as exc:
        response = failure(exc)
        response.headers.update(headers)
        return response
    return JSONResponse({
        **base, "object": "chat.completion",
        "choices": [{"index": 0, "message": message(result), "finish_reason": finish(result)}],
        "usage": usage(result), "soul": soul_fields(session, result)}, headers=headers)


class Chunks:
    """The chat-completions stream: `data: {chunk}` … `data: [DONE]`."""

    def __init__(self, base: dict, session: str, include_usage: bool):
        self.base, self.session, self.include_usage = base, session, include_usage

    def _chunk(self, delta: dict, reason=None, **extra) -> str:
        return sse({**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}], **extra})

    def opening(self):
        yield self._chunk({"role": "assistant", "content": ""})

    def piece(self, text: str):
        yield self._chunk({"content": text})

    def closing(self, result):
        if result.calls:
            if result.reply:  # said before its calls (not streamed: the tool rounds are made whole)
                yield self._chunk({"content": result.reply})
            yield self._chunk({"tool_calls": [{"index": i, **call} for i, call in enumerate(tool_calls(result))]})
        yield self._chunk({}, finish(result), soul=soul_fields(self.session, result))
        if self.include_usage:
            yield sse({**self.base, "choices": [], "usage": usage(result)})
        yield sse("[DONE]")

    def failed(self, error: dict):
        yield sse(error)
        yield sse("[DONE]")


def message(result) -> dict:
    """The assistant message of a chat completion: the reply, or the client's calls to make."""
    if result.calls:
        return {"role": "assistant", "content": result.reply or None, "tool_calls": tool_calls(result)}
    return {"role": "assistant", "content": result.reply}


def tool_calls(result) -> list[dict]:
    return [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in result.calls]


def finish(result) -> str:
    return result.finish_reason if result.finish_reason in ("length", "tool_calls") else "stop"


def usage(result) -> dict:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens}
