"""What `serve` is asked to do (ServeOptions) and what it says once it listens (Ready): shared
by the server that binds and the application it wires, below both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8710
    token: str | None = None
    cors: list[str] = field(default_factory=list)
    queue: int = 4
    max_body: int = 4 << 20
    grace: float = 30.0  # seconds a stop waits for running requests
    mcp: bool = True
    console: bool = True  # the console at / (serve/console/)
    strict: bool = False  # refuse a generation whose files fail verification
    url: str | None = None  # where it listens (set once bound)
    say: Callable[[str], None] | None = None  # what the server tells its log (switches, releases)


@dataclass
class Ready:
    """What `serve` says once it listens (the command prints it)."""

    url: str
    mcp_url: str | None
    generation: str | None
    backend: str
    context: int
    token: bool
