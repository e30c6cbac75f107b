"""The OpenAI-compatible API: the soul, with its memory, for any client that speaks it.

`POST /v1/chat/completions` is a Memory OS turn: the last user message of the request is the
turn; the soul's self-definition, notebook, retrieved memory and window come from its memory,
not from the request (its system and earlier messages are accepted and not used — the window
is the session's own, rebuilt from the log). The session is the request's `user`, else an
`X-Soul-Session` header, else a new one; the response names it in `X-Soul-Session`. Turns
are logged exactly as `soulctl chat` logs them. `POST /v1/embeddings` uses the log's embedder
(the vectors `log add` stores); `GET /v1/models`, `GET /health`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import asynccontextmanager

import numpy as np
from fastapi import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from soulctl.errors import NotFound, SoulError, Unavailable
from soulctl.memory.stream import TurnCancelled
from soulctl.serve.gate import BodyTooLarge, error_body
from soulctl.serve.slot import Busy, Slot

log = logging.getLogger(__name__)

SESSION_HEADER = "X-Soul-Session"
MAX_SESSIONS = 64  # conversations kept open (their windows); older ones reopen from the log
MAX_EMBED_INPUTS = 2048


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.param, self.status = param, status


def _error(status: int, message: str, kind: str, param: str | None = None, headers: dict | None = None,
           code: str | None = None):
    return Response(error_body(message, kind, param, code), status, headers=headers,
                    media_type="application/json")


def _field(body: dict, name: str, kinds, default=None, check=None, why: str = ""):
    """A field of the request, of one of `kinds` (true/false only where bool is named), else
    400 naming it."""
    value = body.get(name)
    if value is None:
        return default
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
            or (check is not None and not check(value))):
        raise BadRequest(f"'{name}' must be {why}", name)
    return value


def _text_of(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text only
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise BadRequest(f"'{where}' may hold text parts only", where)
            texts.append(part["text"])
        return "\n".join(texts)
    raise BadRequest(f"'{where}' must be a string or a list of text parts", where)


def check_session(value: str, where: str) -> str:
    if not (0 < len(value) <= 200) or not value.isprintable():
        raise BadRequest(f"'{where}' must be 1 to 200 printable characters", where)
    return value


class Sessions:
    """Open conversations by session id, least recently used dropped first. Touched by the
    engine thread only."""

    def __init__(self, soul):
        self.soul = soul
        self._open: OrderedDict[str, object] = OrderedDict()

    def get(self, session: str):
        chat = self._open.pop(session, None)
        if chat is None:
            chat = self.soul.session(session)
        self._open[session] = chat
        while len(self._open) > MAX_SESSIONS:
            self._open.popitem(last=False)
        return chat


class TurnStream(StreamingResponse):
    """The streamed response of one turn; whatever ends it (done, the client gone, the server
    stopping) sets `cancel`, so the engine stops and the partial reply is logged as such."""

    def __init__(self, events, cancel: threading.Event, headers: dict):
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self.cancel = cancel

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.cancel.set()


def create_app(soul, *, token: str | None = None, cors: list[str] | None = None,
               max_body: int = 4 << 20, queue: int = 4, host: str = "127.0.0.1", mcp: bool = True):
    """The ASGI application: the API, the MCP endpoint at /mcp, behind the gate."""
    from fastapi import FastAPI

    from soulctl.serve.gate import Gate

    slot = Slot(queue)
    sessions = Sessions(soul)
    engine = soul.engine("soul")
    embedder = soul.embedder
    soul_id = engine.generation or "soul"
    soul_names = {"soul", soul_id}
    embed_names = {embedder.model_id, embedder.model_id.rsplit("/", 1)[-1], "embedder"}
    mcp_server = None
    if mcp:
        from soulctl.serve.mcp import build_server, hidden_tools, http_routes

        mcp_server = build_server(soul, lambda fn, engine_tool: (slot.engine if engine_tool else slot.memory)(fn),
                                  hidden_tools(soul.config, "http", token))
        mcp_routes = http_routes(mcp_server, host)

    @asynccontextmanager
    async def lifespan(_app):
        if mcp_server is not None:
            async with mcp_server.session_manager.run():
                yield
        else:
            yield
        # stopping: uvicorn has stopped accepting and let requests finish (or cancelled them)
        await asyncio.to_thread(slot.close)
        await asyncio.to_thread(soul.close)  # the last turn's writes settle; the model is freed

    app = FastAPI(title="soulctl", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.slot = slot

    from starlette.exceptions import HTTPException

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):  # 404, 405 … in OpenAI's shape too
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(exc.status_code, str(exc.detail), kind, headers=getattr(exc, "headers", None))
    if mcp_server is not None:
        app.router.routes.extend(mcp_routes)

    async def read_json(request: Request) -> dict:
        try:
            raw = await request.body()
        except BodyTooLarge:
            raise BadRequest(f"request body is over the limit of {max_body} bytes (serve --max-body)",
                             status=413) from None
        from soulctl.jsontext import BadJSON, loads

        try:
            body = loads(raw, "the body")
        except BadJSON as exc:
            raise BadRequest(exc.message, exc.param) from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def failure(exc: BaseException):
        """An exception as OpenAI's error shape and status."""
        if isinstance(exc, BadRequest):
            return _error(exc.status, str(exc), "invalid_request_error", exc.param)
        if isinstance(exc, Busy):
            return _error(exc.status, str(exc), "server_busy" if exc.status == 503 else "rate_limit_error",
                          headers={"Retry-After": str(exc.retry_after)})
        if isinstance(exc, NotFound):
            return _error(404, exc.message, "not_found_error")
        if isinstance(exc, Unavailable):
            return _error(503, exc.message, "server_error", headers={"Retry-After": "5"})
        if isinstance(exc, SoulError):
            return _error(400, exc.message + (f" ({exc.hint})" if exc.hint else ""), "invalid_request_error")
        error_id = f"err-{uuid.uuid4().hex[:12]}"
        log.error("request failed (%s)", error_id, exc_info=(type(exc), exc, exc.__traceback__))
        return _error(500, f"internal error {error_id}: see the server's log", "server_error")

    def session_of(request: Request, body: dict) -> str:
        user = _field(body, "user", str, why="a string")
        header = request.headers.get(SESSION_HEADER)
        if user:
            return check_session(user, "user")
        if header:
            return check_session(header, SESSION_HEADER)
        from soulctl.log.packets import new_session_id

        return new_session_id()

    @app.get("/health")
    async def health():
        return {"status": "stopping" if slot.closing else "ok", "model": soul_id,
                "queued": slot.waiting, "queue_limit": slot.limit}

    @app.get("/v1/models")
    async def models():
        created = int(time.time())
        return {"object": "list", "data": [
            {"id": soul_id, "object": "model", "created": created, "owned_by": "soulctl",
             "soul": {"role": "soul", "backend": engine.name, "context": engine.context_length,
                      "generation": engine.generation}},
            {"id": embedder.model_id, "object": "model", "created": created, "owned_by": "soulctl",
             "soul": {"role": "embedder", "dim": embedder.dim}}]}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        try:
            body = await read_json(request)
            model = _field(body, "model", str, why="a string")
            if model and model not in embed_names:
                raise BadRequest(f"model {model!r} does not exist here; the embedder is {embedder.model_id}",
                                 "model", status=404)
            texts = body.get("input")
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise BadRequest("'input' must be a string or a non-empty list of strings "
                                 "(token arrays are not accepted)", "input")
            if len(texts) > MAX_EMBED_INPUTS:
                raise BadRequest(f"'input' holds {len(texts)} texts; at most {MAX_EMBED_INPUTS}", "input")
            if any(not t.strip() for t in texts):
                raise BadRequest("'input' holds an empty text", "input")
            fmt = _field(body, "encoding_format", str, "float", lambda v: v in ("float", "base64"),
                         "'float' or 'base64'")
            dims = _field(body, "dimensions", int, why="an integer")
            if dims is not None and dims != embedder.dim:
                raise BadRequest(f"this embedder gives {embedder.dim} dimensions, not {dims}", "dimensions")
            vectors, tokens = await slot.memory(lambda: (embedder.encode(texts), embedder.count_tokens(texts)))
        except Exception as exc:
            return failure(exc)
        data = []
        for i, vector in enumerate(vectors):
            value = (base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode() if fmt == "base64"
                     else [float(x) for x in vector])
            data.append({"object": "embedding", "index": i, "embedding": value})
        return {"object": "list", "data": data, "model": embedder.model_id,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            body = await read_json(request)
            args = _chat_args(body, soul_names)
            session = session_of(request, body)
        except Exception as exc:
            return failure(exc)
        headers = {SESSION_HEADER: session}
        created, completion_id = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"

        def turn(on_token=None):
            chat = sessions.get(session)
            return chat.turn(args["text"], on_token=on_token, max_tokens=args["max_tokens"],
                             temperature=args["temperature"], stop=args["stop"])

        if not args["stream"]:
            try:
                result = await slot.engine(turn)
            except Exception as exc:
                response = failure(exc)
                response.headers.update(headers)
                return response
            return JSONResponse({
                "id": completion_id, "object": "chat.completion", "created": created, "model": soul_id,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result.reply},
                             "finish_reason": _finish(result)}],
                "usage": _usage(result), "soul": _soul_fields(session, result)}, headers=headers)
        return await _stream(slot, turn, args["include_usage"], headers,
                             dict(id=completion_id, object="chat.completion.chunk", created=created,
                                  model=soul_id), session, failure)

    if cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=cors, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", SESSION_HEADER, "Mcp-Session-Id",
                                          "Mcp-Protocol-Version"],
                           expose_headers=[SESSION_HEADER, "Mcp-Session-Id"])
    return Gate(app, token, max_body)


def _chat_args(body: dict, soul_names: set[str]) -> dict:
    model = _field(body, "model", str, why="a string")
    if model and model not in soul_names:
        raise BadRequest(f"model {model!r} does not exist here; the soul is served as "
                         f"{sorted(soul_names - {'soul'}) or ['soul']} (see /v1/models)", "model", status=404)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    text = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"'messages[{i}]' must be an object with a 'role'", f"messages[{i}]")
        if message["role"] == "user":
            text = _text_of(message.get("content"), f"messages[{i}].content")
    if text is None or not text.strip():
        raise BadRequest("'messages' holds no user message with text: the last one is the turn", "messages")
    if _field(body, "n", int, 1, why="an integer") != 1:
        raise BadRequest("'n' must be 1: the soul gives one reply per turn", "n")
    if body.get("tools") or body.get("functions"):
        raise BadRequest("'tools' are the soul's own (see its MCP server); a request cannot add them", "tools")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or len(stop) > 4
                             or not all(isinstance(s, str) and s for s in stop)):
        raise BadRequest("'stop' must be a string or a list of at most 4 non-empty strings", "stop")
    name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    limit = _field(body, name, int, check=lambda v: v >= 1, why="a positive integer")
    temperature = _field(body, "temperature", (int, float), 0.0, lambda v: 0 <= v <= 2, "a number from 0 to 2")
    stream = _field(body, "stream", bool, False, why="true or false")
    options = _field(body, "stream_options", dict, {}, why="an object")
    include_usage = _field(options, "include_usage", bool, False, why="true or false")
    return dict(text=text.strip(), stop=stop, max_tokens=limit, temperature=float(temperature),
                stream=stream, include_usage=include_usage)


def _finish(result) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def _usage(result) -> dict:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens}


def _soul_fields(session: str, result) -> dict:
    return {"session": session, "user_id": result.user_id, "reply_id": result.reply_id,
            "retrieved": result.retrieved, "flushed": result.flushed}


_DONE = object()


async def _stream(slot: Slot, turn, include_usage: bool, headers: dict, base: dict, session: str, failure):
    """A turn streamed as server-sent events: `data: {chunk}` … `data: [DONE]`. The first
    piece is awaited before the response starts, so a refused turn is an HTTP error."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()

    def on_token(piece: str) -> None:
        if cancel.is_set():
            raise TurnCancelled("the client disconnected")
        loop.call_soon_threadsafe(pieces.put_nowait, piece)

    def job():
        if cancel.is_set():  # its client left while it waited in the queue
            return None
        return turn(on_token)

    try:
        future = slot.submit(job)
    except Busy as exc:
        response = failure(exc)
        response.headers.update(headers)
        return response
    future.add_done_callback(lambda _f: loop.call_soon_threadsafe(pieces.put_nowait, _DONE))
    try:
        first = await pieces.get()
    except asyncio.CancelledError:
        cancel.set()
        raise
    if first is _DONE and future.exception() is not None:
        response = failure(future.exception())
        response.headers.update(headers)
        return response

    def event(payload) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    async def events():
        yield event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}]})
        item = first
        while item is not _DONE:
            yield event({**base, "choices": [{"index": 0, "delta": {"content": item}, "finish_reason": None}]})
            item = await pieces.get()
        if (exc := future.exception()) is not None:  # after the reply began: an error event, then the end
            body = json.loads(failure(exc).body)
            yield event(body)
        elif (result := future.result()) is not None:
            yield event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": _finish(result)}],
                         "soul": _soul_fields(session, result)})
            if include_usage:
                yield event({**base, "choices": [], "usage": _usage(result)})
        yield "data: [DONE]\n\n"

    return TurnStream(events(), cancel, {**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
