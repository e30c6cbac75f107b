"""Errors in OpenAI's shape — `{"error": {"message", "type", "param", "code"}}` — for every
route, and the request-field checks that raise them."""

from __future__ import annotations

import logging
import uuid

from starlette.responses import Response

from soulctl.errors import NotFound, SoulError, Unavailable
from soulctl.serve.gate import error_body
from soulctl.serve.slot import Busy

log = logging.getLogger(__name__)


class BadRequest(Exception):
    """A request refused before any work: 400 (or the status given), naming the field."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.param, self.status, self.code = param, status, code


def error_response(status: int, message: str, kind: str, param: str | None = None,
                   headers: dict | None = None, code: str | None = None) -> Response:
    from soulctl.secrets import redact

    return Response(error_body(redact(message), kind, param, code), status, headers=headers,
                    media_type="application/json")


CLIENT_LEFT = 499  # nginx's status for a client that closed the connection first (only the log sees it)


def failure(exc: BaseException) -> Response:
    """An exception as OpenAI's error shape and status; an unexpected one is 500 with an id
    that the server's log carries beside the traceback."""
    from starlette.requests import ClientDisconnect

    if isinstance(exc, ClientDisconnect):  # it left before its body was whole: nobody to answer
        return error_response(CLIENT_LEFT, "the client closed the connection before its request was whole",
                              "invalid_request_error")
    if isinstance(exc, BadRequest):
        return error_response(exc.status, str(exc), "invalid_request_error", exc.param, code=exc.code)
    if isinstance(exc, Busy):
        return error_response(exc.status, str(exc), "server_busy" if exc.status == 503 else "rate_limit_error",
                              headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, NotFound):
        return error_response(404, exc.message, "not_found_error")
    if isinstance(exc, Unavailable):
        return error_response(503, exc.message, "server_error", headers={"Retry-After": "5"})
    if isinstance(exc, SoulError):
        return error_response(400, exc.message + (f" ({exc.hint})" if exc.hint else ""), "invalid_request_error",
                              getattr(exc, "param", None))
    error_id = f"err-{uuid.uuid4().hex[:12]}"
    log.error("request failed (%s)", error_id, exc_info=(type(exc), exc, exc.__traceback__))
    return error_response(500, f"internal error {error_id}: see the server's log", "server_error")


def field(body: dict, name: str, kinds, default=None, check=None, why: str = ""):
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


def text_of(content, where: str) -> str:
    """A message's content: a string, or text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text only
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text", "output_text") \
                    or not isinstance(part.get("text"), str):
                raise BadRequest(f"'{where}' may hold text parts only", where)
            texts.append(part["text"])
        return "\n".join(texts)
    raise BadRequest(f"'{where}' must be a string or a list of text parts", where)


def check_session(value: str, where: str) -> str:
    if not (0 < len(value) <= 200) or not value.isprintable():
        raise BadRequest(f"'{where}' must be 1 to 200 printable characters", where)
    return value
