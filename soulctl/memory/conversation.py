"""What the Memory OS's parts read of a conversation, declared once: the session implements it
(session.py), the sectors, retrieval and tool turns are written against it — so none of them
imports the session back (a part split out of a module that imports it again is still one room).
And the tools a conversation is handed (it never imports tools/)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from soulctl.engine.base import Engine
    from soulctl.home import Home
    from soulctl.home.config import MemoryConfig
    from soulctl.soul import Soul


class Toolbox(Protocol):
    """The tools a conversation may offer (tools/registry.py makes one): their names, their
    schemas for a model, and a call run within the conversation."""

    names: list[str]

    def schemas(self, names: list[str] | None = None) -> list[dict]: ...

    def call(self, name: str, arguments, chat: "Conversation") -> dict: ...


class Conversation(Protocol):
    soul: Soul
    home: Home
    engine: Engine
    mem: MemoryConfig  # soul.yaml's memory: sectors, pressure
    store: object
    embedder: object
    window: list  # the recent turns (session.Turn)
    wardrobe: object  # the corpora worn
    instructions: str | None  # a client's, for this turn
    retrieve_log: bool
    toolbox: Toolbox | None

    def count(self, text: str) -> int: ...

    def system_text(self, retrieved: str = "") -> str: ...
