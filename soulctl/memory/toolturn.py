"""A turn in which the soul may call its tools (a model that calls them, DESIGN §7).

The user's packet is written first; each call and its result follow as packets (the call a
`soul` packet of kind tool-call, its result a `tool` packet whose parent is the call), then
the final reply, linked to the user's packet. A result enters the conversation within the
retrieved sector's budget (truncated, with a note, when over); the calls stop after
MAX_TOOL_ROUNDS rounds, or when the next request would not fit the context — the reply is
then made from what fits.
"""

from __future__ import annotations

import json
import logging

import numpy as np

from soulctl.log.packets import NewPacket, new_id
from soulctl.memory import tools as registry

log = logging.getLogger(__name__)

MAX_TOOL_ROUNDS = 4  # rounds of calls in one turn: a loop limit against runaway calls
MIN_RESULT_TOKENS = 64  # a result gets at least this much room, even with no retrieved sector
CALL_TOKENS = 256  # room for a call's arguments, which a short reply sector would cut off


def tool_turn(chat, user_text: str, vector: np.ndarray, messages: list[dict], prompt_tokens: int,
              cites: list[str], use_tools: list[str]) -> tuple[str, int, str, str]:
    """(reply, prompt tokens of the final request, user packet id, reply packet id)."""
    from soulctl.corpus.mounts import mounted

    engine, mem = chat.engine, chat.mem
    corpus = ",".join(mounted(chat.home)) or None
    user = NewPacket(prose=user_text, role="user", session=chat.session, id=new_id(),
                     generation=chat.generation, corpus=corpus)
    chat.store.add([user], vector[None, :], chat.embedder.model_id)
    names = list(dict.fromkeys([*chat.tools, *use_tools]))
    offered = registry.schemas(names)
    ctx = registry.ToolContext(chat.soul, chat)
    called: list[str] = []
    reply = None
    for round_ in range(MAX_TOOL_ROUNDS):
        choice = {"type": "function", "function": {"name": use_tools[round_]}} \
            if round_ < len(use_tools) else ("auto" if chat.tools else "none")
        if choice == "none":
            break
        room = engine.context_length - engine.count_chat_tokens(messages)
        if room < mem.reply_tokens:
            break
        content, calls = engine.chat_tools(messages, offered, min(max(mem.reply_tokens, CALL_TOKENS), room),
                                           sampling=chat.sampling, tool_choice=choice)
        if not calls:
            reply = content
            break
        assistant = {"role": "assistant", "content": content or "", "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls]}
        answers = [assistant]
        for c in calls:
            answers.append({"role": "tool", "tool_call_id": c["id"],
                            "content": _call_and_log(chat, ctx, c, user.id, corpus)})
            called.append(c["name"])
        following = messages + answers
        if engine.count_chat_tokens(following) + mem.reply_tokens > engine.context_length:
            log.warning("tool results would overflow the context: answering without them")
            break
        messages = following
    else:
        log.warning("the soul called tools %d rounds in a row: answering now", MAX_TOOL_ROUNDS)
    prompt_tokens = engine.count_chat_tokens(messages)
    if reply is None:
        reply = engine.chat(messages, mem.reply_tokens, chat.sampling)
    chat.last_prompt = messages
    soul = NewPacket(prose=reply or "(no reply)", role="soul", session=chat.session, parent=user.id,
                     generation=chat.generation, corpus=corpus,
                     meta={"prompt_tokens": prompt_tokens, "context": engine.context_length,
                           "retrieved": cites, "backend": engine.name, "tools_called": called})
    written = chat.store.add_then_index([soul], chat.embedder.encode([soul.prose]), chat.embedder.model_id)
    return reply, prompt_tokens, user.id, written[0].id


def _call_and_log(chat, ctx, call: dict, parent: str, corpus: str | None) -> str:
    """Log the call, run it, log its result; the result's text as the model will read it.
    (The call is logged first: what the tool itself logs — the hands' packets — follows it.)"""
    request = NewPacket(prose=f"{call['name']}({call['arguments']})", role="soul", session=chat.session,
                        id=new_id(), parent=parent, generation=chat.generation, corpus=corpus,
                        meta={"kind": "tool-call", "tool": call["name"], "arguments": call["arguments"],
                              "call_id": call["id"]})
    chat.store.add([request], chat.embedder.encode([request.prose]), chat.embedder.model_id)
    outcome = registry.call(call["name"], call["arguments"], ctx)
    text = json.dumps(outcome, ensure_ascii=False, default=str)
    budget = max(MIN_RESULT_TOKENS, chat.mem.retrieved_tokens)
    size = chat.engine.count_tokens(text)
    truncated = size > budget
    if truncated:
        text = chat.engine.truncate(text, budget - 24) + f" … [truncated: {size} tokens, {budget} fit]"
    result = NewPacket(prose=text, role="tool", session=chat.session, parent=request.id,
                       generation=chat.generation, corpus=corpus,
                       meta={"kind": "tool-result", "tool": call["name"], "ok": "error" not in outcome,
                             "tokens": size, "truncated": truncated})
    chat.store.add([result], chat.embedder.encode([result.prose]), chat.embedder.model_id)
    return text
