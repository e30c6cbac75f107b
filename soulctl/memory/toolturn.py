"""A turn in which the model may call tools: the soul's own (DESIGN §7) and a client's.

The user's packet is written first; each call and its result follow as packets (the call a
`soul` packet of kind tool-call, its result a `tool` packet whose parent is the call), then
the final reply, linked to the user's packet. The soul's own tools run here. A call to a
client's tool (a request's `tools`, through serve) pauses the turn: the calls go back to the
client, and the turn resumes when its results come in the next request — logged the same way,
`client: true` in their meta. A result enters the conversation within the retrieved sector's
budget (truncated, with a note, when over); the calls stop after MAX_TOOL_ROUNDS rounds, or
when the next request would not fit the context — the reply is then made from what fits.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field

import numpy as np

from soulctl.errors import InvalidInput
from soulctl.log.packets import NewPacket, new_id
from soulctl.memory.stream import finished

log = logging.getLogger(__name__)

MAX_TOOL_ROUNDS = 4  # rounds of calls in one turn: a loop limit against runaway calls
MIN_RESULT_TOKENS = 64  # a result gets at least this much room, even with no retrieved sector
CALL_TOKENS = 256  # room for a call's arguments, which a short reply sector would cut off


@dataclass
class ClientTools:
    """A client's functions for one turn (chat-completions form: {type, function: {name, …}})
    and its tool_choice: auto, none, required, or the name of one of them."""

    functions: list[dict]
    choice: str = "auto"

    @property
    def names(self) -> list[str]:
        return [f["function"]["name"] for f in self.functions]

    def first_choice(self):
        if self.choice in ("auto", "none", "required"):
            return self.choice
        return {"type": "function", "function": {"name": self.choice}}


@dataclass
class ToolTurn:
    """A tool turn's state, kept on the session while it waits for a client's results."""

    user_id: str
    messages: list[dict]
    cites: list[str]
    corpus: str | None
    forced: list[str]  # the soul's tools it must call first, in order
    client: ClientTools | None
    budget: int  # the reply's tokens
    sampling: object
    rounds: int = 0
    choice_at: int = 0  # the round the client's tool_choice applies to (its request's first)
    called: list[str] = field(default_factory=list)
    waiting: dict[str, dict] = field(default_factory=dict)  # a client call's id -> {name, packet}


@dataclass
class Outcome:
    reply: str
    prompt_tokens: int
    reply_id: str | None = None  # None while the turn waits for a client's results
    calls: list[dict] = field(default_factory=list)  # the client's calls to make: {id, name, arguments}


def start(chat, user_text: str, vector: np.ndarray, messages: list[dict], cites: list[str],
          use_tools: list[str], client: ClientTools | None, budget: int, sampling) -> ToolTurn:
    """The user's packet written and the turn's state set up (run it with `advance`)."""
    from soulctl.corpus.mounts import mounted

    corpus = ",".join(mounted(chat.home)) or None
    user = NewPacket(prose=user_text, role="user", session=chat.session, id=new_id(),
                     generation=chat.generation, corpus=corpus)
    chat.store.add([user], vector[None, :], chat.embedder.model_id)
    return ToolTurn(user.id, messages, cites, corpus, list(use_tools), client, budget, sampling,
                    choice_at=len(use_tools))


def advance(chat, turn: ToolTurn) -> Outcome:
    """Rounds of calls until the model answers, a client's calls wait, or a limit is met."""
    engine, mem = chat.engine, chat.mem
    reply = None
    while turn.rounds < MAX_TOOL_ROUNDS:
        offered, choice = _offer(chat, turn)
        if not offered:
            break
        room = engine.context_length - engine.count_chat_tokens(turn.messages)
        if room < mem.reply_tokens:
            break
        turn.rounds += 1
        content, calls = engine.chat_tools(turn.messages, offered, min(max(turn.budget, CALL_TOKENS), room),
                                           sampling=turn.sampling, tool_choice=choice)
        if not calls:
            reply = content
            break
        theirs = set(turn.client.names) if turn.client else set()
        for c in calls:  # a client's call gets an id the client can answer and we can find
            if c["name"] in theirs:
                c["id"] = "call_" + uuid.uuid4().hex[:24]
        assistant = {"role": "assistant", "content": content or "", "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls]}
        answers = [assistant]
        for c in calls:
            packet = _log_call(chat, turn, c, client=c["name"] in theirs)
            turn.called.append(c["name"])
            if c["name"] in theirs:
                turn.waiting[c["id"]] = {"name": c["name"], "packet": packet}
            else:
                outcome = chat.toolbox.call(c["name"], c["arguments"], chat)
                text = _log_result(chat, turn, c["name"], packet, json.dumps(outcome, ensure_ascii=False,
                                                                            default=str), "error" not in outcome)
                answers.append({"role": "tool", "tool_call_id": c["id"], "content": text})
        if turn.waiting:  # the client answers these in its next request
            turn.messages = turn.messages + answers
            mine = [c for c in calls if c["id"] in turn.waiting]
            return Outcome(content or "", engine.count_chat_tokens(turn.messages), calls=mine)
        if not _extend(chat, turn, answers):
            break
    else:
        log.warning("the soul called tools %d rounds in a row: answering now", MAX_TOOL_ROUNDS)
    return _answer(chat, turn, reply)


def resume(chat, turn: ToolTurn, results: dict[str, str], client: ClientTools | None) -> Outcome:
    """The client's results for the calls it was given, then the turn goes on with the tools
    and tool_choice of the request that brought them."""
    if missing := [i for i in turn.waiting if i not in results]:
        raise InvalidInput(f"the call {missing[0]} ({turn.waiting[missing[0]]['name']}) has no result: "
                           "send one result per call the soul made")
    if extra := [i for i in results if i not in turn.waiting]:
        raise InvalidInput(f"{extra[0]!r} answers no call waiting in this session")
    answers = []
    for call_id, call in turn.waiting.items():  # in the order the calls were made
        text = _log_result(chat, turn, call["name"], call["packet"], results[call_id], True, client=True)
        answers.append({"role": "tool", "tool_call_id": call_id, "content": text})
    turn.waiting = {}
    turn.client, turn.choice_at = client, turn.rounds
    if _extend(chat, turn, answers):
        return advance(chat, turn)
    return _answer(chat, turn, None)


def _offer(chat, turn: ToolTurn) -> tuple[list[dict], object]:
    """This round's tools and tool_choice: a forced tool of the soul's first, then the
    client's choice (its first round), then auto over whatever may still be called."""
    mine = list(dict.fromkeys([*chat.tools, *turn.forced]))
    client = turn.client
    theirs = client.functions if client and client.choice != "none" else []
    offered = chat.toolbox.schemas(mine) if mine else []
    offered += theirs
    if turn.rounds < len(turn.forced):
        return offered, {"type": "function", "function": {"name": turn.forced[turn.rounds]}}
    if client and theirs and turn.rounds == turn.choice_at:
        return offered, client.first_choice()
    if not chat.tools and not theirs:
        return [], "none"
    return offered, "auto"


def _extend(chat, turn: ToolTurn, answers: list[dict]) -> bool:
    """The round's calls and results join the request, if the reply still fits after them."""
    following = turn.messages + answers
    if chat.engine.count_chat_tokens(following) + chat.mem.reply_tokens > chat.engine.context_length:
        log.warning("tool results would overflow the context: answering without them")
        return False
    turn.messages = following
    return True


def _answer(chat, turn: ToolTurn, reply: str | None) -> Outcome:
    """The final reply, logged and linked to the user's packet."""
    engine = chat.engine
    prompt_tokens = engine.count_chat_tokens(turn.messages)
    if reply is None:
        reply = engine.chat(turn.messages, turn.budget, turn.sampling)
    reply = finished(reply).strip()  # the memory's markup, echoed, is never logged nor returned
    chat.last_prompt = turn.messages
    soul = NewPacket(prose=reply or "(no reply)", role=chat.speaker, session=chat.session, parent=turn.user_id,
                     generation=chat.generation, corpus=turn.corpus,
                     meta={"prompt_tokens": prompt_tokens, "context": engine.context_length,
                           "retrieved": turn.cites, "backend": engine.name, "tools_called": turn.called})
    written = chat.store.add_then_index([soul], chat.embedder.encode([soul.prose]), chat.embedder.model_id)
    return Outcome(reply, prompt_tokens, written[0].id)


def _log_call(chat, turn: ToolTurn, call: dict, client: bool) -> str:
    """The call as a packet (logged before it runs: what the tool itself logs — the hands'
    packets — follows it); its id."""
    meta = {"kind": "tool-call", "tool": call["name"], "arguments": call["arguments"], "call_id": call["id"]}
    request = NewPacket(prose=f"{call['name']}({call['arguments']})", role="soul", session=chat.session,
                        id=new_id(), parent=turn.user_id, generation=chat.generation, corpus=turn.corpus,
                        meta={**meta, "client": True} if client else meta)
    chat.store.add([request], chat.embedder.encode([request.prose]), chat.embedder.model_id)
    return request.id


def _log_result(chat, turn: ToolTurn, name: str, parent: str, text: str, ok: bool, client: bool = False) -> str:
    """The result as a packet; its text as the model will read it (cut to the budget)."""
    budget = max(MIN_RESULT_TOKENS, chat.mem.retrieved_tokens)
    size = chat.engine.count_tokens(text)
    truncated = size > budget
    if truncated:
        text = chat.engine.truncate(text, budget - 24) + f" … [truncated: {size} tokens, {budget} fit]"
    meta = {"kind": "tool-result", "tool": name, "ok": ok, "tokens": size, "truncated": truncated}
    result = NewPacket(prose=text or "(empty)", role="tool", session=chat.session, parent=parent,
                       generation=chat.generation, corpus=turn.corpus,
                       meta={**meta, "client": True} if client else meta)
    chat.store.add([result], chat.embedder.encode([result.prose]), chat.embedder.model_id)
    return text
