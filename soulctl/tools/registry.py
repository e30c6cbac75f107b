"""The soul's tools: one registry, defined once, that the chat loop (models that call tools),
the REPL's slash commands and the MCP server all reach (DESIGN §7).

A tool is a name, a description, a JSON schema for its arguments and a function of a
ToolContext (the Soul, and the conversation when there is one) and those arguments. It
returns a JSON-able result; a SoulError becomes {"error": "…"} for the model to read. A new
tool is a function with `@tool(...)` in a module of this package (builtin.py holds the soul's
own); the Memory OS is handed a Toolbox and never imports this package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from soulctl.errors import InvalidInput, SoulError

if TYPE_CHECKING:
    from soulctl.memory.session import ChatSession
    from soulctl.soul import Soul


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict  # JSON schema of the arguments (an object)
    run: Callable[..., Any]
    engine: bool = False  # runs the model: a server queues it with the turns

    def schema(self) -> dict:
        """The OpenAI `tools` entry."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass
class ToolContext:
    soul: Soul
    chat: ChatSession | None = None  # the conversation, when one calls the tool


TOOLS: dict[str, Tool] = {}


def tool(name: str, description: str, properties: dict, required: tuple[str, ...] = (),
         engine: bool = False):
    """Register `fn(ctx, **arguments)` as a tool."""
    def register(fn):
        TOOLS[name] = Tool(name, description, {"type": "object", "properties": properties,
                                               "required": list(required)}, fn, engine)
        return fn
    return register


def schemas(names: list[str] | None = None) -> list[dict]:
    return [TOOLS[n].schema() for n in (names or TOOLS)]


class BadArguments(InvalidInput):
    """A tool's arguments do not fit its schema; `param` names the first that does not (MCP
    answers it as JSON-RPC -32602, invalid params)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
          "object": (dict,), "array": (list,)}


def check_arguments(name: str, arguments: dict | str | None) -> dict:
    """The arguments of a call to tool `name`, checked against its schema: required names
    present, no unknown names, each value of its declared type (and enum), text that is UTF-8."""
    if name not in TOOLS:
        raise BadArguments(f"no tool {name!r} (tools: {', '.join(TOOLS)})", "name")
    args = _arguments(arguments)
    spec = TOOLS[name].parameters
    missing = [k for k in spec["required"] if args.get(k) in (None, "")]
    if missing:
        raise BadArguments(f"{name} needs `{missing[0]}`", missing[0])
    unknown = sorted(set(args) - set(spec["properties"]))
    if unknown:
        raise BadArguments(f"{name} takes no `{unknown[0]}` (it takes {', '.join(spec['properties'])})",
                           unknown[0])
    for key, value in args.items():
        if value is not None:
            _check_value(name, key, value, spec["properties"][key])
    return args


def _check_value(tool: str, key: str, value, schema: dict) -> None:
    kind = schema.get("type")
    wanted = _TYPES.get(kind, (object,))
    if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
        raise BadArguments(f"{tool}: `{key}` must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}, "
                           f"not {type(value).__name__} {json.dumps(value)[:40]}", key)
    if "enum" in schema and value not in schema["enum"]:
        raise BadArguments(f"{tool}: `{key}` must be one of {', '.join(map(str, schema['enum']))}", key)
    from soulctl.jsontext import BadJSON, check

    try:
        check(value, f"{tool}: `{key}`")
    except BadJSON as exc:
        raise BadArguments(exc.message, key) from None
    if kind == "array" and "items" in schema:
        for item in value:
            _check_value(tool, key, item, schema["items"])


def call(name: str, arguments: dict | str | None, ctx: ToolContext) -> dict:
    """Run a tool on a model's (or a client's) arguments: checked against the schema's
    required names and types, errors returned as {"error": …} rather than raised."""
    try:
        args = check_arguments(name, arguments)
        return {"result": TOOLS[name].run(ctx, **args)}
    except BadArguments as exc:  # the arguments fit the schema but not each other: the field named
        return {"error": exc.message, "param": exc.param}
    except SoulError as exc:
        return {"error": exc.message + (f" ({exc.hint})" if exc.hint else "")}


def _arguments(arguments: dict | str | None) -> dict:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, strict=False)  # models write raw newlines in strings
        except (json.JSONDecodeError, RecursionError) as exc:
            raise BadArguments(f"the tool's arguments are not JSON ({getattr(exc, 'msg', 'nested too deeply')})") from None
    if not isinstance(arguments, dict):
        raise BadArguments("the tool's arguments must be a JSON object")
    return arguments


class Toolbox:
    """What a conversation is handed (memory/session.py's `tools`): the tools' names, their
    schemas to offer a model, and a call that runs one within the conversation."""

    @property
    def names(self) -> list[str]:
        return list(TOOLS)

    def schemas(self, names: list[str] | None = None) -> list[dict]:
        return schemas(names)

    def call(self, name: str, arguments, chat) -> dict:
        return call(name, arguments, ToolContext(chat.soul, chat))
