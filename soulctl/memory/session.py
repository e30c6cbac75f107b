"""A conversation through the Memory OS (DESIGN §5).

The prompt is assembled from protected sectors — self-definition, notebook, retrieved (mounted
corpora and the log) and window — counted with the serving model's tokenizer. When the window
reaches the pressure threshold the protocol runs: the soul (or the majordomo) rewrites the
notebook from the window, its size is enforced (asked again, then trimmed with a logged
reason), the window is flushed, and the conversation resumes on the new notebook. Before any
request the assembler proves that prompt + reply fit the model's context: overflow is
prevented, not caught.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from soulctl.engine.sampling import Sampling, of_role
from soulctl.errors import CheckFailed, InvalidInput
from soulctl.log import NewPacket
from soulctl.log.packets import env_session, new_id, new_session_id
from soulctl.memory import notebook as nb
from soulctl.memory.retrieval import retrieved_sector
from soulctl.memory.review import Review, checked
from soulctl.memory.sectors import check_fits_alone, check_sectors, too_big
from soulctl.memory.facts import cited, keep_stated
from soulctl.memory.stream import generate

if TYPE_CHECKING:
    from soulctl.memory.conversation import Toolbox
    from soulctl.memory.toolturn import ClientTools
    from soulctl.soul import Soul


log = logging.getLogger(__name__)

MESSAGE_FRAMING = 4  # tokens a chat template adds around each message (role markers, ends)
NOTEBOOK_MARGIN = 64  # tokens kept free in a notebook rewrite request for the chat template
SELF_MARGIN = 96  # the same for a self-definition rewrite, which quotes more around the window

REWRITE_PROMPT = (
    "Your context window is nearly full and is about to be flushed. Rewrite your notebook: keep "
    "what it already holds that still matters and add the critical facts, decisions and open "
    "threads from the conversation below. Write at most {limit} tokens, plain notes only.\n\n"
    "Current notebook:\n{notebook}\n\nConversation:\n{window}")

SELF_PROMPT = (
    "Above is your self-definition: the permanent text you read at the start of every "
    "conversation. Rewrite it in your own words.{guidance} Keep what is essential to who you "
    "are. Write at most {limit} tokens, addressed to yourself as that text is, plain text only, "
    "each thing said once.")


@dataclass
class Turn:
    role: str  # user | assistant
    content: str
    packet_id: str | None = None
    tokens: int | None = None  # counted once, with the serving model's tokenizer


@dataclass
class TurnResult:
    reply: str
    prompt_tokens: int
    flushed: bool
    user_id: str
    reply_id: str
    retrieved: list[str] = field(default_factory=list)
    completion_tokens: int = 0
    finish_reason: str = "stop"  # stop | length | cancelled
    partial: bool = False  # the reply was cut off (its reader left); logged as such
    generation: str | None = None  # the generation that answered
    speaker: str = "soul"  # soul, or majordomo while the soul's weights are released
    notebook: dict | None = None  # the notebook the prompt held: its version and the packets its lines cite
    instructions: dict | None = None  # what a client's instructions became (serve: soul.instructions)
    tools: dict | None = None  # what became of a client's tools (serve: soul.tools)
    calls: list[dict] = field(default_factory=list)  # a client's tools to call, the turn waiting for them


class ChatSession:
    """One conversation of the soul: its engine, embedder and store are the Soul's; the
    majordomo, when soul.yaml names one, keeps the notebook."""

    def __init__(self, soul: Soul, session: str, retrieve_log: bool = True, progress=None,
                 speaker: str = "soul", tools: Toolbox | None = None):
        self.soul, self.session, self.retrieve_log = soul, session, retrieve_log
        self.notebook_held: dict | None = None  # the notebook the last prompt held (its version, its cites)
        self.home, self.store, self.embedder = soul.home, soul.store, soul.embedder
        # who answers: the soul, or its majordomo while the soul's weights are released for the night
        self.speaker = speaker
        self.engine = engine = soul.engine(speaker, progress)  # a first run on llama.cpp converts it
        spec = self.home.config.roles[speaker]
        self.sampling = of_role(spec)  # each turn may override it (chat flags, API fields)
        self.max_reply = spec.sampling.max_reply_tokens
        self.keeper, self.keeper_role = engine, speaker  # who rewrites the notebook
        if speaker == "soul" and "majordomo" in self.home.config.roles:
            self.keeper, self.keeper_role = soul.engine("majordomo", progress), "majordomo"
        # the tools it may offer, handed by whoever opened it (memory/ never imports tools/)
        self.toolbox = tools
        self.tools = tools.names if tools and self.home.config.roles["soul"].tools and engine.supports_tools else []
        self.mem = self.home.config.memory
        check_sectors(self.mem, engine.context_length)
        from soulctl.corpus.mounts import Wardrobe
        from soulctl.log.ingest import check_embedder

        check_embedder(self.store, self.embedder)  # once: every packet of the session is embedded here
        self.wardrobe = Wardrobe(self.home)  # mounted corpora stay open between turns
        self._counts: dict[str, int] = {}  # token counts of retrieved texts, which recur
        self.window: list[Turn] = self._rebuild_window()
        # the generation actually served (None when a server serves a model we cannot name)
        self.generation = engine.generation
        self.last_prompt: list[dict] = []
        self.announce = None  # a callable told of memory work as it happens (the REPL's status)
        self.instructions: str | None = None  # a client's, for one turn (instruct)
        self.waiting = None  # (tool turn, user text) while a client's calls are out

    # -- the window, rebuilt from the log ------------------------------------------------
    def _rebuild_window(self) -> list[Turn]:
        from soulctl.log import Filters

        turns: list[Turn] = []
        for packet in self.store.list(Filters(session=self.session), newest_first=True):
            if packet.role == "system" and (packet.meta or {}).get("kind") == "flush":
                break
            if packet.role in ("user", "soul", "majordomo") and not (packet.meta or {}).get("kind"):
                turns.append(Turn("user" if packet.role == "user" else "assistant", packet.prose, packet.id))
        return list(reversed(turns))

    # -- sectors -------------------------------------------------------------------------
    def system_text(self, retrieved: str = "") -> str:
        memory = nb.current_all(self.soul)
        self_text, notebook = memory["self"]["text"], memory["notebook"]["text"]
        self.notebook_held = {"version": memory["notebook"]["version"], "cites": cited(notebook)}
        parts = [self_text, "# Notebook\n" + (notebook or "(empty)")]
        if self.instructions:
            parts.append("# The client's instructions\n" + self.instructions)
        if retrieved:
            parts.append("# Retrieved\n" + retrieved)
        return "\n\n".join(parts)

    def window_tokens(self, extra: list[Turn] = ()) -> int:
        total = 0
        for t in [*self.window, *extra]:
            if t.tokens is None:
                t.tokens = self.engine.count_tokens(t.content)
            total += t.tokens + MESSAGE_FRAMING
        return total

    def count(self, text: str) -> int:
        """Tokens of `text` on the serving model (remembered: retrieved texts recur)."""
        if (n := self._counts.get(text)) is None:
            if len(self._counts) > 4096:
                self._counts.clear()
            n = self._counts[text] = self.engine.count_tokens(text)
        return n

    def instruct(self, text: str | None) -> dict | None:
        """A client's instructions (a system message, `instructions`) for the next turn: placed
        after the notebook under "# The client's instructions", never in place of the
        self-definition, within half the retrieved sector (trimmed, with a note, when over);
        what was used, for the response to say."""
        from soulctl.memory.rewrite import trim_to_tokens

        self.instructions = None
        if not text or not text.strip():
            return None
        limit = self.mem.retrieved_tokens // 2
        size = self.engine.count_tokens(text.strip())
        kept = text.strip() if size <= limit else trim_to_tokens(self.engine, text.strip(), limit)
        self.instructions = kept or None
        return {"placed": "after the notebook" if kept else "nowhere: memory.retrieved_tokens is 0",
                "tokens": self.count(kept) if kept else 0, "trimmed_from": size if size > limit else None}

    def assemble(self, user_text: str, vector: np.ndarray | None = None) -> tuple[list[dict], int, list[str]]:
        """The request: sectors in order, and its token count with the serving model's own
        chat template — the number the context check is made on."""
        retrieved, cites = retrieved_sector(self, user_text, vector)
        messages = [{"role": "system", "content": self.system_text(retrieved)}]
        messages += [{"role": t.role, "content": t.content} for t in self.window]
        messages.append({"role": "user", "content": user_text})
        return messages, self.engine.count_chat_tokens(messages), cites

    # -- a turn --------------------------------------------------------------------------
    def turn(self, user_text: str, on_token=None, use_tools: tuple = (), max_tokens: int | None = None,
             sampling: Sampling | None = None, stop: list[str] | None = None,
             client_tools: ClientTools | None = None) -> TurnResult:
        """One exchange. With tools (a model that calls them), the soul may call them first —
        `use_tools` names tools it must call, in order, before it decides for itself. A
        client's tools are offered beside the soul's own; a call to one ends the turn for now
        (`calls` in the result) until `answer_calls` brings its results.

        `max_tokens` is capped at the reply sector (the context check reserves that much);
        `sampling` replaces the role's settings for this turn (`self.sampling.but(...)`);
        `stop` strings end the reply before them; `on_token` gets the reply as it is written
        and may raise TurnCancelled, which ends the turn with the partial reply logged."""
        if not user_text.strip():
            raise InvalidInput("empty message")
        if use_tools and not self.engine.supports_tools:
            raise InvalidInput(f"the {self.engine.name} backend does not call tools",
                               hint="serve the soul from a server with tool calling (backend: openai, tools: true), "
                                    "or use the REPL's slash commands (/hands, /self, /mount)")
        known = self.toolbox.names if self.toolbox else []
        if unknown := [t for t in use_tools if t not in known]:
            raise InvalidInput(f"no tool {unknown[0]!r}", hint=f"tools: {', '.join(known) or 'none handed to this session'}")
        self.settle()
        limit = self.engine.context_length - self.mem.reply_tokens
        check_fits_alone(self, user_text, limit)  # before the pressure protocol changes anything
        flushed = False
        vector = self.embedder.encode([user_text])[0]  # the packet's, and retrieval's unless asymmetric
        asked = self.embedder.encode_queries([user_text])[0] if self.embedder.asymmetric else vector
        need = self.window_tokens([Turn("user", user_text)])
        if self.window and need >= self.mem.pressure * self.mem.window_tokens:
            self.pressure()
            flushed = True
        elif need >= self.mem.warn * self.mem.window_tokens:
            self._say(f"window at {need / self.mem.window_tokens:.0%} of its sector; the notebook is "
                      f"rewritten and the window flushed at {self.mem.pressure:.0%}")
        messages, prompt_tokens, cites = self.assemble(user_text, asked)
        if prompt_tokens > limit and self.window:
            self.pressure()
            flushed = True
            messages, prompt_tokens, cites = self.assemble(user_text, asked)
        if prompt_tokens > limit:
            raise too_big(self, user_text, prompt_tokens, limit)
        self.last_prompt = messages
        self.waiting = None  # a new user turn leaves calls a client never answered
        budget = min(max_tokens or self.max_reply or self.mem.reply_tokens, self.mem.reply_tokens)
        sampling = (sampling or self.sampling).check(self.engine.name)
        client = client_tools if client_tools and client_tools.functions and self.engine.supports_tools else None
        if self.tools or use_tools or client:
            from soulctl.memory import toolturn

            state = toolturn.start(self, user_text, vector, messages, cites, list(use_tools), client, budget,
                                   sampling)
            keep_stated(self, user_text, state.user_id)
            return self._tool_result(state, user_text, toolturn.advance(self, state), flushed, on_token)
        reply, stopped, cancelled = generate(self.engine, messages, budget, sampling, stop, on_token)
        completion = self.engine.count_tokens(reply)
        finish = "cancelled" if cancelled else "stop" if stopped or completion < budget else "length"
        extra = {"partial": True, "cut": cancelled} if cancelled else None
        user_packet, reply_packet = self._log_turn(user_text, vector, reply, prompt_tokens, cites, extra)
        keep_stated(self, user_text, user_packet)
        self.window += [Turn("user", user_text, user_packet), Turn("assistant", reply, reply_packet)]
        return TurnResult(reply, prompt_tokens, flushed, user_packet, reply_packet, cites,
                          completion, finish, bool(cancelled), self.generation, self.speaker, self.notebook_held)

    def answer_calls(self, results: dict[str, str], client_tools: ClientTools | None = None,
                     on_token=None) -> TurnResult:
        """The client's results for the calls of the turn that waits for them (call id ->
        result text); the turn goes on from there, offered the tools of the request that
        brought them."""
        from soulctl.memory import toolturn

        if self.waiting is None:
            raise InvalidInput(f"no tool call waits for a result in session {self.session!r}",
                               hint="a call is answered in the request after the one that made it, before "
                                    "the next user message (a restarted or switched server forgets it)")
        state, user_text = self.waiting
        outcome = toolturn.resume(self, state, results, client_tools)  # checks the ids before anything is logged
        self.waiting = None
        return self._tool_result(state, user_text, outcome, False, on_token)

    def _tool_result(self, state, user_text: str, outcome, flushed: bool, on_token) -> TurnResult:
        """A tool turn's outcome: waiting for a client's calls, or its reply (in the window)."""
        result = TurnResult(outcome.reply, outcome.prompt_tokens, flushed, state.user_id, outcome.reply_id,
                            state.cites, self.engine.count_tokens(outcome.reply) if outcome.reply else 0,
                            generation=self.generation, speaker=self.speaker, notebook=self.notebook_held)
        if outcome.calls:
            self.waiting = (state, user_text)
            result.calls, result.finish_reason = outcome.calls, "tool_calls"
            return result
        if on_token and outcome.reply:
            on_token(outcome.reply)  # made whole (the tool rounds do not stream): one piece
        self.window += [Turn("user", user_text, state.user_id), Turn("assistant", outcome.reply, outcome.reply_id)]
        return result

    def _log_turn(self, user_text: str, vector: np.ndarray, reply: str, prompt_tokens: int,
                  cites: list[str], extra: dict | None = None) -> tuple[str, str]:
        """The message and the reply, linked, as two bifocal packets in one transaction."""
        from soulctl.corpus.mounts import mounted

        corpus = ",".join(mounted(self.home)) or None
        user = NewPacket(prose=user_text, role="user", session=self.session, id=new_id(),
                         generation=self.generation, corpus=corpus)
        soul = NewPacket(prose=reply or "(no reply)", role=self.speaker, session=self.session,
                         parent=user.id, generation=self.generation, corpus=corpus,
                         meta={"prompt_tokens": prompt_tokens, "context": self.engine.context_length,
                               "retrieved": cites, "backend": self.engine.name, **(extra or {})})
        vectors = np.stack([vector, self.embedder.encode([soul.prose])[0]])
        written = self.store.add_then_index([user, soul], vectors, self.embedder.model_id)
        return written[0].id, written[1].id

    def settle(self) -> None:
        """Wait for the store's background upkeep of the last turn (its packets are already
        committed; their index update and checkpoint run while the user reads the reply)."""
        self.store.settle()

    # -- the pressure protocol -----------------------------------------------------------
    def pressure(self, reason: str = "pressure: window flushed") -> int:
        """Rewrite the notebook from the window (checked), flush, resume."""
        import time

        started = time.monotonic()
        self._say(f"window at {self.fill():.0%}: rewriting the notebook from {len(self.window)} turns, "
                  "then flushing the window…")
        version, packets, found = self._rewrite_notebook(reason)
        flush = NewPacket(prose=f"window flushed after {len(self.window)} turns; notebook v{version} injected",
                          role="system", session=self.session, generation=self.generation,
                          meta={"kind": "flush", "turns": len(self.window), "notebook_version": version})
        self._log([*packets, flush])
        self.window = []
        self._say(f"notebook v{version} ({found.summary()}); window flushed in {time.monotonic() - started:.0f} s")
        return version

    def fill(self) -> float:
        """How full the window's sector is."""
        return self.window_tokens() / self.mem.window_tokens

    def _say(self, message: str) -> None:
        """Memory work, told as it happens: to the REPL's `announce`, else the log."""
        (self.announce or log.info)(message)

    def rewrite_notebook(self, guidance: str | None = None) -> int:
        """The notebook rewritten on request (a tool, an MCP client): as under pressure, from
        the window so far and the guidance given, but the window stays."""
        reason = "rewritten on request" + (f" ({guidance.strip()})" if guidance else "")
        version, packets, _ = self._rewrite_notebook(reason, guidance)
        self._log(packets)
        return version

    def _rewrite_notebook(self, reason: str, guidance: str | None = None) -> tuple[int, list[NewPacket], Review]:
        self.settle()
        limit = self.mem.notebook_tokens
        memory = nb.current_all(self.soul)
        self_text, current_notebook = memory["self"]["text"], memory["notebook"]["text"] or "(empty)"
        keeper = self.keeper  # the request is the keeper's: counted with its tokenizer, within its context
        extra = guidance.strip().replace("{", "{{").replace("}", "}}") if guidance else ""
        prompt = REWRITE_PROMPT + (f"\n\nKeep this in mind: {extra}" if extra else "")
        room = (keeper.context_length - limit - NOTEBOOK_MARGIN - keeper.count_tokens(self_text)
                - keeper.count_tokens(prompt + current_notebook))
        ask = [{"role": "system", "content": self_text},
               {"role": "user", "content": prompt.format(
                   limit=limit, notebook=current_notebook, window=self._quote_window(room, keeper))}]
        prompt_tokens = keeper.count_chat_tokens(ask)
        text, notes, drafts, found = self._checked(keeper, ask, limit, "notebook", memory["notebook"]["text"])
        reason += notes + f"; checked: {found.summary()}"
        version = nb.write(self.soul, "notebook", text, self.keeper_role, reason, found.as_dict())
        rewrite = NewPacket(prose=text or "(empty notebook)", role=self.keeper_role,
                            session=self.session, generation=self.generation,
                            meta={"kind": "notebook", "version": version, "reason": reason,
                                  "prompt_tokens": prompt_tokens, "context": keeper.context_length,
                                  "backend": keeper.name, **({"drafts": drafts} if drafts else {})})
        return version, [rewrite, *self._evictions("notebook", version, found)], found

    # -- the soul's rewrite tool for its self-definition ---------------------------------
    def rewrite_self(self, guidance: str | None = None) -> int:
        """The soul rewrites its own self-definition (never the majordomo), from the current
        one, the guidance given and the recent window; its size enforced like the notebook's.
        A new version authored by the soul, and a packet in the log."""
        self.settle()
        limit = self.mem.self_tokens
        current = nb.current(self.soul, "self")["text"]
        prompt = SELF_PROMPT.format(limit=limit, guidance=f" Make it say this, in your words: {guidance.strip()}."
                                    if guidance else "")
        ask = [{"role": "system", "content": current}, {"role": "user", "content": prompt}]
        room = self.engine.context_length - limit - SELF_MARGIN - self.engine.count_chat_tokens(ask)
        if window := self._quote_window(room):
            ask[1]["content"] += "\n\nThe conversation so far:\n" + window
        text, notes, drafts, found = self._checked(self.engine, ask, limit, "self-definition", current, guidance)
        if not text:
            raise InvalidInput("the soul wrote an empty self-definition; nothing changed",
                               hint="try again, perhaps with --guidance")
        reason = ("rewritten by the soul" + (f" ({guidance.strip()})" if guidance else "") + notes
                  + f"; checked: {found.summary()}")
        version = nb.write(self.soul, "self", text, "soul", reason, found.as_dict())
        self._log([NewPacket(prose=text, role="soul", session=self.session, generation=self.generation,
                             meta={"kind": "self", "version": version, "reason": reason,
                                   **({"drafts": drafts} if drafts else {})}),
                   *self._evictions("self", version, found)])
        return version

    # -- shared by both rewrites ---------------------------------------------------------
    def _checked(self, writer, ask: list[dict], limit: int, what: str, previous: str,
                 guidance: str | None = None) -> tuple[str, str, list[str], Review]:
        window = [t.content for t in self.window] + ([guidance] if guidance else [])  # what may supersede
        ids = [t.packet_id for t in self.window] + ([None] if guidance else [])  # what a new line cites
        return checked(writer, self.engine, self.embedder, ask, limit, what, previous, window, ids)

    def _evictions(self, kind: str, version: int, found: Review) -> list[NewPacket]:
        """Every line a rewrite evicted for room, as a packet the log's search finds."""
        return [NewPacket(prose=line, role="system", session=self.session, generation=self.generation,
                          meta={"kind": "evicted", "from": kind, "version": version}) for line in found.evicted]

    def _quote_window(self, room: int, counter=None) -> str:
        """As much of the window as `room` tokens (of `counter`'s tokenizer, by default the
        soul's) hold, newest turns first."""
        counter = counter or self.engine
        lines: list[str] = []
        for t in reversed(self.window):
            line = f"{t.role}: {t.content}"
            room -= counter.count_tokens(line) + 1
            if room < 0:
                break
            lines.insert(0, line)
        return "\n".join(lines)

    def _log(self, packets: list[NewPacket]) -> None:
        from soulctl.log.ingest import add_packets

        list(add_packets(self.store, self.embedder, packets))


def open_session(soul: Soul, session: str | None = None, strict: bool = False, warn=None,
                 progress=None, tools: Toolbox | None = None) -> ChatSession:
    """A ChatSession on the soul for `session` (default: $SOUL_SESSION or a new one). The
    generation served is verified first (cheaply when unchanged): a tampered one is refused with
    `strict`, served with a warning otherwise."""
    from soulctl.engine import served_generation
    from soulctl.generations import verify_cached

    home = soul.home
    if (gid := served_generation(home, "soul")) is not None:
        check = verify_cached(home, gid, progress)
        if not check.ok:
            message = f"{gid} fails verification ({check.problems()})"
            if strict:
                raise CheckFailed(message + "; refusing to serve it",
                                  hint=f"restore it: soulctl gen materialize {gid}")
            (warn or log.warning)(message + f"; serving it anyway (restore it: soulctl gen materialize {gid})")
    return ChatSession(soul, session or env_session() or new_session_id(), progress=progress, tools=tools)
