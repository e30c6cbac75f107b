"""The soul's tools over MCP: stdio for Claude Code (`soulctl mcp`), streamable HTTP beside the
API (`soulctl serve`, at /mcp).

The tools are the registry in tools/ (tools/registry.py), listed with their own JSON schemas and called
through its `call`, so MCP, the chat loop and the REPL run the same code. A tool's result is
JSON text in the content and the same value as structured content; a SoulError comes back as
an error result with its one line, never as a protocol failure.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Awaitable, Callable

import mcp_types as types

from soulctl import __version__
from soulctl.errors import SoulError
from soulctl import tools as registry

if TYPE_CHECKING:
    from soulctl.soul import Soul

INSTRUCTIONS = ("The memory and tools of a local LLM (a soul): search its log by meaning and keyword "
                "(hits are bifocal packets: prose, ids and, when asked, the embedding), add to the log, "
                "read or ask for a rewrite of its notebook and self-definition, mount and search corpora, "
                "mark what resonates, check its RAM budget, hand construction work to its coding agent.")

Runner = Callable[[Callable[[], dict], bool], Awaitable[dict]]


def build_server(soul: Soul, run: Runner, hidden: frozenset[str] = frozenset()):
    """The MCP server on `soul`; `run(fn, uses_engine)` runs a tool call off the event loop
    (serve queues the ones that use the model with the chat turns). `hidden` tools are neither
    listed nor callable here (see exposed). Arguments that do not fit a tool's schema are a
    JSON-RPC error -32602 naming the argument; a tool's own refusal is an error result."""
    from mcp.server import Server

    list_tools, call_tool = _tool_handlers(soul, run, hidden)
    handlers = _colleague_handlers(soul, run)
    return Server("soul", version=__version__, instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool, **handlers)


def _tool_handlers(soul: Soul, run: Runner, hidden: frozenset[str]):
    """tools/list and tools/call: the registry's tools less the hidden ones."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import INVALID_PARAMS

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[
            types.Tool(name=t.name, description=t.description, input_schema=t.parameters)
            for t in registry.TOOLS.values() if t.name not in hidden])

    async def call_tool(ctx, params) -> types.CallToolResult:
        name = params.name
        try:
            if name in hidden:
                raise registry.BadArguments(
                    f"{name} is not offered here: the coding agent runs only for a client the soul "
                    "trusts (stdio, or a server with a token; soul.yaml hands.expose)", "name")
            arguments = registry.check_arguments(name, params.arguments or {})
        except registry.BadArguments as exc:
            raise MCPError(INVALID_PARAMS, exc.message, {"param": exc.param}) from None
        tool = registry.TOOLS[name]
        context = registry.ToolContext(soul)
        outcome = await run(lambda: registry.call(name, arguments, context), tool.engine)
        if "param" in outcome:
            raise MCPError(INVALID_PARAMS, outcome["error"], {"param": outcome["param"]})
        failed = "error" in outcome
        text = outcome["error"] if failed else json.dumps(outcome["result"], ensure_ascii=False, default=str)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structured_content=None if failed else json.loads(
                                        json.dumps(outcome, default=str)),
                                    is_error=failed)

    return list_tools, call_tool


def _colleague_handlers(soul: Soul, run: Runner) -> dict:
    """What makes the soul a colleague beyond its tools: resources (notebook, self-definition,
    lineage, packets by id) and the consult-the-soul prompt, as Server keyword arguments."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import INVALID_PARAMS

    async def list_resources(ctx, params) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[
            types.Resource(uri=uri, name=name, description=what, mime_type=mime)
            for uri, (name, what, mime) in RESOURCES.items()])

    async def list_templates(ctx, params) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[types.ResourceTemplate(
            uri_template="soul://packet/{id}", name="packet", mime_type="application/json",
            description="A packet of the log by id (or unique prefix): prose, ids, meta; the embedding too.")])

    async def read_resource(ctx, params) -> types.ReadResourceResult:
        uri = str(params.uri)
        try:
            text, mime = await run(lambda: read(soul, uri), False)
        except SoulError as exc:
            raise MCPError(INVALID_PARAMS, exc.message, {"uri": uri}) from None
        return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type=mime, text=text)])

    async def list_prompts(ctx, params) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[types.Prompt(
            name="consult-the-soul", description=CONSULT_WHAT,
            arguments=[types.PromptArgument(name="task", description="What you are about to do.", required=True)])])

    async def get_prompt(ctx, params) -> types.GetPromptResult:
        if params.name != "consult-the-soul":
            raise MCPError(INVALID_PARAMS, f"no prompt {params.name!r} (prompts: consult-the-soul)", {"param": "name"})
        task = (params.arguments or {}).get("task")
        if not task:
            raise MCPError(INVALID_PARAMS, "consult-the-soul needs `task`", {"param": "task"})
        return types.GetPromptResult(description=CONSULT_WHAT, messages=[types.PromptMessage(
            role="user", content=types.TextContent(type="text", text=CONSULT.format(task=task)))])

    return dict(on_list_resources=list_resources, on_list_resource_templates=list_templates,
                on_read_resource=read_resource, on_list_prompts=list_prompts, on_get_prompt=get_prompt)


RESOURCES = {
    "soul://notebook": ("notebook", "The soul's notebook, current version (it rewrites it itself).", "text/markdown"),
    "soul://self": ("self-definition", "The soul's self-definition, current version.", "text/markdown"),
    "soul://lineage": ("lineage", "The generation served now and its lineage: anchor, layers, merges.",
                       "application/json"),
}
CONSULT_WHAT = "Consult the soul before acting: what it knows, remembers and wants about a task."
CONSULT = ("Before you act on this task, consult the soul whose hands you are.\n\nTask: {task}\n\n"
           "1. Ask it with the ask_soul tool what it knows and wants about the task.\n"
           "2. Search its memory (search_memory) for what was said about it before.\n"
           "3. Act within what it said; when done, report back with add_to_log (role hands).")


def read(soul: Soul, uri: str) -> tuple[str, str]:
    """A resource's text and type."""
    from soulctl.errors import NotFound
    from soulctl.memory import notebook as nb

    if uri in ("soul://notebook", "soul://self"):
        return nb.current(soul, "self" if uri == "soul://self" else "notebook")["text"], "text/markdown"
    if uri == "soul://lineage":
        from dataclasses import asdict

        from soulctl.generations import current, read_lineage

        gid = current(soul.home)
        if gid is None:
            raise NotFound("no current generation", hint="soulctl init")
        lineage = read_lineage(soul.home, gid)
        return json.dumps({"generation": gid, **asdict(lineage)}, default=str), "application/json"
    if uri.startswith("soul://packet/"):
        packet = soul.store.get(uri.removeprefix("soul://packet/"))
        return json.dumps(packet.as_dict(), default=str, ensure_ascii=False), "application/json"
    raise NotFound(f"no resource {uri} (soul://notebook, soul://self, soul://lineage, soul://packet/ID)")


def hidden_tools(config, transport: str, token: str | None = None) -> frozenset[str]:
    """The tools not offered over `transport` (stdio | http): invoke_agent runs a coding agent
    with the user's rights, so over HTTP it needs a token-guarded server unless soul.yaml's
    `hands.expose` says true, and `hands.expose: false` keeps it off MCP altogether."""
    expose = config.hands.expose
    if expose is False or (expose == "auto" and transport == "http" and not token):
        return frozenset({"invoke_agent"})
    return frozenset()


def http_routes(server, host: str) -> list:
    """The streamable-HTTP endpoint (/mcp) as routes to add to the API's application; the
    caller runs `server.session_manager.run()` in its lifespan. DNS-rebinding protection on
    loopback; behind a token on any other address (the gate checks it)."""
    from mcp.server.transport_security import TransportSecuritySettings

    from soulctl.serve.gate import is_loopback

    security = None if is_loopback(host) else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1" if is_loopback(host) else host,
                                     transport_security=security)
    return list(app.routes)


def run_stdio(soul: Soul) -> None:
    """Serve MCP on stdin/stdout until the client closes them (stdout is the protocol: all
    else goes to stderr). Tool calls run one at a time in a worker thread."""
    import anyio
    from mcp.server.stdio import stdio_server

    from soulctl.serve.mcp.stdio import stdio_wire

    limiter = anyio.CapacityLimiter(1)

    async def run(fn, _uses_engine):
        return await anyio.to_thread.run_sync(fn, limiter=limiter)

    server = build_server(soul, run, hidden_tools(soul.config, "stdio"))

    async def main():
        async with stdio_wire() as (lines, wire), stdio_server(lines, wire) as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
