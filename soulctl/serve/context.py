"""What every route of one server shares: the soul, the engine slot, the open conversations,
the names the soul answers to, and reading a request's JSON body."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from soulctl.serve.errors import BadRequest, check_session, field
from soulctl.serve.gate import BodyTooLarge
from soulctl.serve.slot import Slot

if TYPE_CHECKING:
    from fastapi import Request

    from soulctl.memory.session import ChatSession
    from soulctl.soul import Soul

SESSION_HEADER = "X-Soul-Session"
MAX_SESSIONS = 64  # conversations kept open (their windows); older ones reopen from the log
MAX_CALLS = 1024  # a client's calls remembered, to find the session its results continue


class Sessions:
    """Open conversations by session id, least recently used dropped first, all with one
    speaker (the soul, or the majordomo while the soul is released). Touched by the engine
    thread only."""

    def __init__(self, soul: Soul, speaker: str = "soul"):
        self.soul, self.speaker = soul, speaker
        self._open: OrderedDict[str, ChatSession] = OrderedDict()

    def get(self, session: str) -> ChatSession:
        chat = self._open.pop(session, None)
        if chat is None:
            from soulctl.memory.session import ChatSession

            from soulctl.tools import Toolbox

            chat = ChatSession(self.soul, session, speaker=self.speaker, tools=Toolbox())
        self._open[session] = chat
        while len(self._open) > MAX_SESSIONS:
            self._open.popitem(last=False)
        return chat

    def peek(self, session: str) -> ChatSession | None:
        """The open conversation `session`, if open (not opened, not touched)."""
        return self._open.get(session)

    def clear(self) -> None:
        """Forget every open conversation (their windows reopen from the log, on the engine
        that serves them next)."""
        self._open.clear()

    def pressure(self) -> list[dict]:
        """Each open conversation's window against its sector (soulctl status)."""
        out = []
        for session, chat in list(self._open.items()):
            used, sector = chat.window_tokens(), chat.mem.window_tokens
            out.append({"session": session, "speaker": self.speaker, "turns": len(chat.window),
                        "window_tokens": used, "window_sector": sector, "fill": round(used / sector, 3)})
        return out


class Served:
    """One server's shared state, kept on the application (`app.state.served`): the soul and
    the generation it serves (which follows `current`, serve/follow.py), the engine's queue,
    the open conversations."""

    def __init__(self, soul: Soul, queue: int, max_body: int, url: str | None = None):
        self.soul, self.max_body, self.url = soul, max_body, url
        self.slot = Slot(queue)
        self.sessions = Sessions(soul)
        self.has_majordomo = "majordomo" in soul.config.roles
        self.majordomo = Sessions(soul, "majordomo") if self.has_majordomo else None
        self.generation = soul.engine("soul").generation  # the generation served
        self.follower = None  # set by the app: who keeps `generation` on `current`
        self.calls: OrderedDict[str, str] = OrderedDict()  # a client's call id -> its session
        self.stopping = lambda: False  # whether a stop has begun (set by server.run)

    @property
    def engine(self):
        return self.soul.engine("soul")

    @property
    def released(self) -> bool:
        return self.follower is not None and self.follower.lease is not None

    @property
    def soul_id(self) -> str:
        """The name the soul is served as: its generation's id."""
        return self.generation or "soul"

    def soul_names(self) -> set[str]:
        return {"soul", self.soul_id}

    def embed_names(self) -> set[str]:
        model_id = self.soul.embedder.model_id
        return {model_id, model_id.rsplit("/", 1)[-1], model_id.split("@", 1)[0], "embedder"}

    # -- on the engine's worker -------------------------------------------------------------
    def chat_for(self, session: str) -> ChatSession:
        """The conversation that answers a turn now: the soul's, or while its weights are
        released the majordomo's; with neither, 503 with Retry-After."""
        if not self.released:
            return self.sessions.get(session)
        if self.majordomo is not None:
            return self.majordomo.get(session)
        from soulctl.serve.slot import Busy

        raise Busy("the soul is dreaming: its weights are released for the night and no majordomo "
                   "is configured", self.follower.retry_after(), status=503)

    def swap_engine(self, new=None) -> None:
        """Serve `new` (or, when it was not prepared aside, `current` loaded now, after the old
        model is freed); the open conversations reopen on it."""
        old = self.soul.drop_engine("soul")
        self.sessions.clear()
        if new is None:
            if old is not None:
                old.close()
            new, old = self.open_soul_engine(), None
        self.soul.put_engine("soul", new)
        self.generation = new.generation
        if old is not None:
            old.close()

    def release_engine(self) -> None:
        """Free the soul's weights (the night needs the memory)."""
        self.sessions.clear()
        old = self.soul.drop_engine("soul")
        if old is not None:
            old.close()

    # -- off the engine's worker ------------------------------------------------------------
    def open_soul_engine(self):
        """The soul's engine on what `current` names now (its GGUF converted first if need be)."""
        from soulctl.engine import open_engine

        return open_engine(self.soul.home, "soul")

    def room_for_two(self) -> bool:
        """Whether a second copy of the soul's model fits beside the running server."""
        from soulctl.budget.plan import plan_budget

        try:
            budget = plan_budget(home=self.soul.home, stores=self.soul.resident_files())
        except Exception:  # a model the budget cannot read: load it in place, the safe way
            return False
        soul = sum(c["bytes"] for c in budget.components() if c["role"] == "soul")
        return budget.headroom_bytes >= soul

    async def read_json(self, request: Request) -> dict:
        from soulctl.jsontext import BadJSON, loads

        try:
            raw = await request.body()
        except BodyTooLarge:
            raise BadRequest(f"request body is over the limit of {self.max_body} bytes (serve --max-body)",
                             status=413) from None
        try:
            body = loads(raw, "the body")
        except BadJSON as exc:
            raise BadRequest(exc.message, exc.param) from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def remember_calls(self, session: str, calls: list[dict]) -> None:
        for call in calls:
            self.calls[call["id"]] = session
        while len(self.calls) > MAX_CALLS:
            self.calls.popitem(last=False)

    def session_of(self, request: Request, user: str | None, field_name: str = "user", calls=(),
                   calls_field: str = "messages") -> str:
        """The request's session: its `user`, else the X-Soul-Session header, else — for the
        results of a client's calls — the session that made them, else a new one."""
        header = request.headers.get(SESSION_HEADER)
        if user:
            return check_session(user, field_name)
        if header:
            return check_session(header, SESSION_HEADER)
        if calls:
            if (known := next((self.calls[c] for c in calls if c in self.calls), None)) is None:
                raise BadRequest(f"the tool result for {next(iter(calls))!r} answers no call this server made "
                                 "(or one it has forgotten: a restart or a generation switch ends a waiting "
                                 "turn); send the user message again", calls_field)
            return known
        from soulctl.log.packets import new_session_id

        return new_session_id()
