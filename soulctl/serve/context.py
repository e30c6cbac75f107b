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


class Sessions:
    """Open conversations by session id, least recently used dropped first. Touched by the
    engine thread only."""

    def __init__(self, soul: Soul):
        self.soul = soul
        self._open: OrderedDict[str, ChatSession] = OrderedDict()

    def get(self, session: str) -> ChatSession:
        chat = self._open.pop(session, None)
        if chat is None:
            chat = self.soul.session(session)
        self._open[session] = chat
        while len(self._open) > MAX_SESSIONS:
            self._open.popitem(last=False)
        return chat

    def clear(self) -> None:
        """Forget every open conversation (their windows reopen from the log)."""
        self._open.clear()


class Served:
    """One server's shared state, kept on the application (`app.state.served`)."""

    def __init__(self, soul: Soul, queue: int, max_body: int):
        self.soul, self.max_body = soul, max_body
        self.slot = Slot(queue)
        self.sessions = Sessions(soul)

    @property
    def engine(self):
        return self.soul.engine("soul")

    @property
    def soul_id(self) -> str:
        """The name the soul is served as: its generation's id."""
        return self.engine.generation or "soul"

    def soul_names(self) -> set[str]:
        return {"soul", self.soul_id}

    def embed_names(self) -> set[str]:
        model_id = self.soul.embedder.model_id
        return {model_id, model_id.rsplit("/", 1)[-1], model_id.split("@", 1)[0], "embedder"}

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

    def session_of(self, request: Request, body: dict, field_name: str = "user") -> str:
        """The request's session: its `user`, else the X-Soul-Session header, else a new one."""
        user = field(body, field_name, str, why="a string")
        header = request.headers.get(SESSION_HEADER)
        if user:
            return check_session(user, field_name)
        if header:
            return check_session(header, SESSION_HEADER)
        from soulctl.log.packets import new_session_id

        return new_session_id()
