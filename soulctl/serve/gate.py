"""What stands in front of every route: the bearer token, the body size limit, CORS only when
asked, and OpenAI's error shape for what the gate refuses.

A plain ASGI middleware around the whole application (the API and the MCP endpoint alike), so
nothing behind it can forget a check. Loopback is the default; `serve` refuses any other
address without a token (commands/serve.py).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import time

OPEN_PATHS = ("/health",)  # answered without the token: a load balancer's probe
TOKEN_ENV = "SOULCTL_SERVE_TOKEN"
MIN_TOKEN = 16


def read_token(path=None) -> str | None:
    """The bearer token from `path` (a file only its owner may read) or $SOULCTL_SERVE_TOKEN:
    at least 16 printable characters without spaces, whichever the source."""
    import os
    import stat
    from pathlib import Path

    from soulctl.errors import InvalidInput

    if path is None:
        token = os.environ.get(TOKEN_ENV)
        if token is None:
            return None
        return _check_token(token.strip(), TOKEN_ENV)
    from soulctl.infile import LIMITS, read_text

    path = Path(path)
    token = read_text(path, LIMITS["token"], "token file", regular_only=True,
                      missing_hint="write one: umask 077; openssl rand -hex 32 > FILE").strip()
    mode = os.stat(path).st_mode
    if stat.S_IMODE(mode) & 0o077:
        raise InvalidInput(f"the token file {path} is readable by others (mode {stat.S_IMODE(mode):o})",
                           hint=f"chmod 600 {path}")
    return _check_token(token, str(path))


def _check_token(token: str, source: str) -> str:
    from soulctl.errors import InvalidInput

    if len(token) < MIN_TOKEN or not token.isprintable() or " " in token:
        raise InvalidInput(f"the token from {source} must be at least {MIN_TOKEN} printable characters "
                           "without spaces", hint="e.g. `openssl rand -hex 32`")
    return token


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}}).encode()


async def send_error(send, status: int, message: str, kind: str, headers: dict | None = None,
                     code: str | None = None) -> None:
    body = error_body(message, kind, code=code)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_console_path(path: str) -> bool:
    from soulctl.serve.console import is_console_path as console_owns

    return console_owns(path)


async def send_text(send, status: int, text: str, headers: dict | None = None) -> None:
    body = (text + "\n").encode()
    raw = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass


class Gate:
    def __init__(self, app, token: str | None, max_body: int, access=None, console=None):
        self.app, self.max_body = app, max_body
        self.console = console  # the console's guard (serve/console/guard.py), when it is served
        self.token = f"Bearer {token}".encode() if token else None
        self.access = access  # told one line per request: method, path, status, ms, session, generation

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.access is None:
            return await self._gate(scope, receive, send)
        started, seen = time.perf_counter(), {}

        async def noted(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen.update({k.decode().lower(): v.decode("latin-1") for k, v in message.get("headers", [])
                             if k.lower() in (b"x-soul-session", b"x-soul-generation")})
            await send(message)

        try:
            await self._gate(scope, receive, noted)
        finally:
            ms = (time.perf_counter() - started) * 1000
            extra = "".join(f" {name}={seen[key]}" for name, key in (("session", "x-soul-session"),
                                                                       ("generation", "x-soul-generation"))
                            if key in seen)
            self.access(f"{scope['method']} {scope['path']} {seen.get('status', '-')} {ms:.0f} ms{extra}")

    def _console(self, scope, headers: dict):
        """A console request refused (a sender of the answer), or None to let it through: a
        Host that is not this server's (DNS rebinding), or no sign-in where a token is set."""
        from soulctl.serve.console.guard import OPEN, Refusal

        try:
            self.console.check_host(headers)
        except Refusal as exc:
            status, message = exc.status, exc.message
            return lambda send: send_text(send, status, message)
        if scope["path"] in OPEN or self.console.admitted(headers):
            return None
        if scope["method"] in ("GET", "HEAD"):
            return lambda send: send_text(send, 303, "sign in first: /login", {"location": "/login"})
        return lambda send: send_text(send, 401, "sign in first (or send `Authorization: Bearer <token>`)",
                                      {"www-authenticate": "Bearer"})

    async def _gate(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.console is not None and is_console_path(scope["path"]):
            if (refused := self._console(scope, headers)) is not None:
                return await refused(send)
        elif self.token is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.token):  # constant time in the token's bytes
                return await send_error(send, 401, "missing or wrong bearer token: send "
                                        "`Authorization: Bearer <token>`", "authentication_error",
                                        {"www-authenticate": "Bearer"}, code="invalid_api_key")
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await send_error(send, 400, "bad Content-Length header", "invalid_request_error")
            if too_big:  # refused from the header, before a byte of the body is read
                return await send_error(send, 413, f"request body of {int(length)} bytes is over the "
                                        f"limit of {self.max_body} (serve --max-body)", "invalid_request_error",
                                        {"connection": "close"})
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:  # a chunked body without a length, stopped as it passes
                    raise BodyTooLarge
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await send_error(send, 413, f"request body is over the limit of {self.max_body} bytes "
                                 "(serve --max-body)", "invalid_request_error", {"connection": "close"})
