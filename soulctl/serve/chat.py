"""POST /v1/chat/completions: one Memory OS turn.

The last user message of the request is the turn; the soul's self-definition, notebook,
retrieved memory and window come from its memory, not from the request (earlier user and
assistant messages are accepted and not used — the window is the session's own, rebuilt from
the log). A client's tools and the results of their calls: serve/tools.py. System (and developer) messages are the client's instructions: placed after the
notebook, within half the retrieved sector, and the response's `soul.instructions` says what
was used. The session is the request's `user`, else an `X-Soul-Session` header, else a new
one; the response names it in `X-Soul-Session`. Turns are logged exactly as `soulctl chat`
logs them.
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from soulctl.engine.sampling import INTEGERS, LIMITS, out_of_range
from soulctl.engine.schema import check_json_schema
from soulctl.errors import InvalidInput
from soulctl.serve.context import SESSION_HEADER
from soulctl.serve.errors import BadRequest, failure, field, text_of
from soulctl.serve.streaming import sse, stream_turn
from soulctl.serve.tools import chat_offer, chat_results, check_choice, note

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request):
    served = request.app.state.served
    try:
        body = await served.read_json(request)
        args = chat_args(body, served.soul_names())
        session = served.session_of(request, body, calls=args["results"])
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


def served_turn(served, session: str, args: dict, headers: dict, on_token=None):
    """One turn of a request, on the engine's worker (the generation served now): the client's
    instructions placed, its sampling over the role's, its tools offered where the engine
    calls tools (or the results of their calls continuing the turn that made them), what
    became of them noted; the headers name who answered. Shared by every dialect."""
    chat = served.chat_for(session)
    headers.update(answered_headers(chat))
    offer = args["tools"]
    check_choice(offer, chat.engine)
    if args["results"]:
        result = chat.answer_calls(args["results"], offer.client, on_token)
    else:
        used = chat.instruct(args["instructions"])
        result = chat.turn(args["text"], on_token=on_token, max_tokens=args["max_tokens"],
                           sampling=chat.sampling.but(**args["sampling"]), stop=args.get("stop"),
                           client_tools=offer.client)
        result.instructions = used
    result.tools = note(offer, chat.engine)
    served.remember_calls(session, result.calls)
    return result


GENERATION_HEADER = "X-Soul-Generation"
SPEAKER_HEADER = "X-Soul-Answered-By"


def answered_headers(chat) -> dict:
    """Who answers this turn: the generation, and soul or majordomo."""
    return {GENERATION_HEADER: chat.generation or chat.speaker, SPEAKER_HEADER: chat.speaker}


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


def chat_args(body: dict, soul_names: set[str]) -> dict:
    model = field(body, "model", str, why="a string")
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
    if field(body, "n", int, 1, why="an integer") != 1:
        raise BadRequest("'n' must be 1: the soul gives one reply per turn", "n")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or len(stop) > 4
                             or not all(isinstance(s, str) and s for s in stop)):
        raise BadRequest("'stop' must be a string or a list of at most 4 non-empty strings", "stop")
    name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    limit = field(body, name, int, check=lambda v: v >= 1, why="a positive integer")
    stream = field(body, "stream", bool, False, why="true or false")
    options = field(body, "stream_options", dict, {}, why="an object")
    include_usage = field(options, "include_usage", bool, False, why="true or false")
    fmt = field(body, "response_format", dict, why="an object")
    return dict(text=text.strip(), stop=stop, max_tokens=limit,
                sampling={**sampling_args(body), **json_format(fmt, "response_format")},
                stream=stream, include_usage=include_usage, instructions="\n\n".join(instructions) or None,
                tools=chat_offer(body), results=chat_results(messages))


# A request's sampling fields over the role's settings (soul.yaml): OpenAI's names, and
# llama.cpp's server's extensions, in the limits every source shares (engine/sampling.py);
# a backend without one refuses it by name.
SAMPLING_FIELDS = {name: (int if name in INTEGERS else (int, float),
                          lambda v, name=name: out_of_range(name, v) is None, why)
                   for name, (_, why) in LIMITS.items()}


def json_format(fmt: dict | None, where: str) -> dict:
    """`response_format` (chat) or `text.format` (responses) as the sampling's `json`: nothing
    for text, {} for a JSON object, the schema for a JSON schema; honoured by a grammar where
    the engine has one, refused by name where it has not."""
    if not fmt or fmt.get("type") == "text":
        return {}
    if fmt.get("type") == "json_object":
        return {"json": {}}
    if fmt.get("type") == "json_schema":
        schema = fmt.get("schema", (fmt.get("json_schema") or {}).get("schema"))
        if not isinstance(schema, dict) or not schema:
            raise BadRequest(f"'{where}' of type json_schema needs a schema object", where)
        try:
            return {"json": check_json_schema(schema, f"'{where}' schema")}
        except InvalidInput as exc:
            raise BadRequest(exc.message, where) from None
    raise BadRequest(f"'{where}.type' must be text, json_object or json_schema", f"{where}.type")


def sampling_args(body: dict) -> dict:
    out = {}
    for name, (kind, check, why) in SAMPLING_FIELDS.items():
        value = field(body, name, kind, check=check, why=why)
        if value is not None:
            out[name] = value if name in ("seed", "top_k") else float(value)
    return out


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


def soul_fields(session: str, result) -> dict:
    return {"session": session, "user_id": result.user_id, "reply_id": result.reply_id,
            "retrieved": result.retrieved, "flushed": result.flushed, "generation": result.generation,
            "answered_by": result.speaker, "instructions": result.instructions,
            "tools": result.tools}
