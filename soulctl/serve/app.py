"""The ASGI application: the router of each API surface serve/openai/ lists (chat completions,
the Responses API, embeddings, models), the MCP endpoint at /mcp, the console at / (unless
--no-console), all behind the gate (token or the console's sign-in, body size, CORS only when
asked)."""

from __future__ import annotations

import asyncio
import importlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from soulctl.serve.context import SESSION_HEADER, Served

if TYPE_CHECKING:
    from soulctl.serve.options import ServeOptions
    from soulctl.soul import Soul


def create_app(soul: Soul, options: ServeOptions):
    from fastapi import FastAPI
    from starlette.exceptions import HTTPException

    from soulctl.serve.errors import error_response
    from soulctl.serve.openai import SURFACES
    from soulctl.serve.gate import Gate

    from soulctl.home.control import ControlServer
    from soulctl.serve.follow import Follower

    served = Served(soul, options.queue, options.max_body, options.url)
    served.follower = Follower(served, options.say)
    control = ControlServer(soul.home, served.follower.handle,
                            {"url": options.url, "generation": served.generation})
    mcp_server = _mcp(served, options) if options.mcp else None

    @asynccontextmanager
    async def lifespan(_app):
        control.start()  # `gen use`, `evolve` and `soulctl status` reach the server from now on
        served.follower.start()
        try:
            if mcp_server is not None:
                async with mcp_server.session_manager.run():
                    yield
            else:
                yield
        finally:  # stopping: uvicorn has stopped accepting and let requests finish (or cancelled them)
            served.follower.stop()
            control.stop()
            await asyncio.to_thread(served.slot.close)
            await asyncio.to_thread(soul.close)  # the last turn's writes settle; the model is freed

    app = FastAPI(title="soulctl", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.served = served

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):  # 404, 405 … in OpenAI's shape too
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, str(exc.detail), kind, headers=getattr(exc, "headers", None))

    for surface in SURFACES:
        app.include_router(importlib.import_module(f"soulctl.serve.openai.{surface}.routes").router)
    guard = _console(app, served, options) if options.console else None
    if mcp_server is not None:
        from soulctl.serve.mcp import http_routes

        app.router.routes.extend(http_routes(mcp_server, options.host))
    if options.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=options.cors, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", SESSION_HEADER, "Mcp-Session-Id",
                                          "Mcp-Protocol-Version"],
                           expose_headers=[SESSION_HEADER, "Mcp-Session-Id"])
    gate = Gate(app, options.token, options.max_body, access=options.say, console=guard)
    gate.served = served  # for the server's signal handlers
    return gate


def _console(app, served: Served, options: ServeOptions):
    """The console's routes on the app; its guard, for the gate."""
    from urllib.parse import urlsplit

    from soulctl.serve.console.guard import Guard
    from soulctl.serve.console.pages import build_router

    guard = Guard(options.token, options.host, urlsplit(options.url or "").port or 0)
    app.include_router(build_router(served, guard))
    return guard


def _mcp(served: Served, options: ServeOptions):
    """The soul's tools over streamable HTTP; the ones that run the model queue with the turns."""
    from soulctl.serve.mcp import build_server, hidden_tools

    def run(fn, uses_engine: bool):
        return (served.slot.engine if uses_engine else served.slot.memory)(fn)

    return build_server(served.soul, run, hidden_tools(served.soul.config, "http", options.token))
