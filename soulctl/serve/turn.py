"""One served turn, the same under every dialect (chat completions, the Responses API): the
client's instructions placed, its sampling over the role's, its tools offered where the engine
calls tools (or their results continuing the turn that made them), what became of them noted,
and who answered named in the headers. The dialects only read requests and write responses."""

from __future__ import annotations

from soulctl.engine.schema import check_json_schema
from soulctl.errors import InvalidInput
from soulctl.serve.errors import BadRequest
from soulctl.serve.openai.tools import check_choice, note


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


def soul_fields(session: str, result) -> dict:
    return {"session": session, "user_id": result.user_id, "reply_id": result.reply_id,
            "retrieved": result.retrieved, "flushed": result.flushed, "generation": result.generation,
            "answered_by": result.speaker, "instructions": result.instructions,
            "tools": result.tools, "notebook": result.notebook}
