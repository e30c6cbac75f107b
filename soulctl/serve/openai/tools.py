"""A client's own tools, in both dialects: what a request offers, what it answers, and what
became of them.

A request's function tools are offered to an engine that calls tools, beside the soul's own
(which stay internal: their calls run and are logged inside the turn). A call to a client's
tool is returned to the client — `tool_calls` (chat completions) or `function_call` items
(responses) — and its result, sent in the next request (`tool` messages or
`function_call_output` items), continues the same turn. On an engine that cannot call tools
the soul answers in text; either way the response's `soul.tools` says what was offered.
Nothing is refused because tools were sent; a tool_choice that demands a call the engine
cannot make is refused by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field as dc_field

from soulctl.memory.toolturn import ClientTools
from soulctl.serve.errors import BadRequest, text_of

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class Offer:
    """A request's tools: the function tools that can be offered, and the rest (by type)."""

    client: ClientTools | None = None
    count: int = 0
    others: list[str] = dc_field(default_factory=list)  # tools that are not functions: never offered


def chat_offer(body: dict) -> Offer:
    """`tools` and `tool_choice` of a chat-completions request."""
    if body.get("functions"):
        raise BadRequest("'functions' is the old name of 'tools': send 'tools'", "functions")
    functions, others = [], []
    for i, tool in enumerate(_list(body, "tools")):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise BadRequest(f"'{where}' must be an object", where)
        if tool.get("type", "function") != "function":
            others.append(str(tool.get("type")))
            continue
        spec = tool.get("function")
        if not isinstance(spec, dict):
            raise BadRequest(f"'{where}.function' must be an object", f"{where}.function")
        functions.append(_function(spec, f"{where}.function"))
    choice = body.get("tool_choice") or "auto"
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
    return _offer(functions, others, choice)


def responses_offer(body: dict) -> Offer:
    """`tools` and `tool_choice` of a Responses request (function tools are flat there)."""
    functions, others = [], []
    for i, tool in enumerate(_list(body, "tools")):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise BadRequest(f"'{where}' must be an object", where)
        if tool.get("type") != "function":
            others.append(str(tool.get("type")))
            continue
        functions.append(_function(tool, where))
    choice = body.get("tool_choice") or "auto"
    if isinstance(choice, dict):
        choice = choice.get("name") if choice.get("type") == "function" else None
    return _offer(functions, others, choice)


def chat_results(messages: list) -> dict[str, str]:
    """The results a chat-completions request brings: its trailing `tool` messages, after the
    assistant message whose calls they answer (call id -> text)."""
    end = len(messages)
    while end and isinstance(messages[end - 1], dict) and messages[end - 1].get("role") == "tool":
        end -= 1
    results = {}
    for i in range(end, len(messages)):
        message, where = messages[i], f"messages[{i}]"
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise BadRequest(f"'{where}.tool_call_id' must name the call it answers", f"{where}.tool_call_id")
        results[call_id] = text_of(message.get("content"), f"{where}.content")
    if results and not (end and messages[end - 1].get("role") == "assistant" and messages[end - 1].get("tool_calls")):
        raise BadRequest("'messages' ends in tool results with no assistant message of tool_calls before them",
                         "messages")
    return results


def responses_results(items) -> dict[str, str]:
    """The results a Responses request brings: `function_call_output` items after its last
    user message (call id -> text)."""
    if not isinstance(items, list):
        return {}
    results = {}
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            continue
        if item.get("type", "message") == "message" and item.get("role") == "user":
            results = {}  # a user message after them starts a new turn
        elif item.get("type") == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise BadRequest(f"'{where}.call_id' must name the call it answers", f"{where}.call_id")
            output = item.get("output")
            results[call_id] = output if isinstance(output, str) else text_of(output, f"{where}.output")
    return results


def check_choice(offer: Offer, engine) -> None:
    """A tool_choice that demands a call is refused on an engine that calls none."""
    if offer.client and offer.client.choice not in ("auto", "none") and not engine.supports_tools:
        raise BadRequest(f"'tool_choice' asks for a tool call, but the {engine.name} backend does not call "
                         "tools: send auto or none (the soul answers in text)", "tool_choice")


def note(offer: Offer, engine) -> dict | None:
    """What became of a client's tools (the response's soul.tools)."""
    if not offer.count:
        return None
    names = offer.client.names if offer.client else []
    out: dict = {"count": offer.count}
    if not engine.supports_tools:
        out.update(offered=False, why=f"the {engine.name} backend does not call tools; the soul answers in text")
    elif not names:
        out.update(offered=False, why="only function tools can be offered; the soul answers in text")
    elif offer.client.choice == "none":
        out.update(offered=False, why="tool_choice is none; the soul answers in text")
    else:
        out.update(offered=True, names=names)
    if offer.others:
        out["not_offered"] = [{"type": t, "why": "only function tools can be offered"} for t in offer.others]
    return out


def _list(body: dict, name: str) -> list:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"'{name}' must be a list", name)
    return value


def _function(spec: dict, where: str) -> dict:
    """One function tool in the chat-completions form the engines take."""
    name = spec.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise BadRequest(f"'{where}.name' must be 1 to 64 letters, digits, _ or -", f"{where}.name")
    from soulctl.tools import TOOLS

    if name in TOOLS:
        raise BadRequest(f"'{where}.name' {name!r} is one of the soul's own tools: give yours another name",
                         f"{where}.name")
    parameters = spec.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise BadRequest(f"'{where}.parameters' must be a JSON schema object", f"{where}.parameters")
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise BadRequest(f"'{where}.description' must be a string", f"{where}.description")
    function = {"name": name, "parameters": json.loads(json.dumps(parameters))}
    if description:
        function["description"] = description
    return {"type": "function", "function": function}


def _offer(functions: list[dict], others: list[str], choice) -> Offer:
    names = [f["function"]["name"] for f in functions]
    if len(set(names)) < len(names):
        raise BadRequest("'tools' names one function twice", "tools")
    if choice not in ("auto", "none", "required") and choice not in names:
        raise BadRequest("'tool_choice' must be auto, none, required, or name one of the request's functions",
                         "tool_choice")
    if choice == "required" and not names:
        raise BadRequest("'tool_choice' is required, but the request offers no function tool", "tool_choice")
    return Offer(ClientTools(functions, choice) if functions else None, len(functions) + len(others), others)
