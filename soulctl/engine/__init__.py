"""Inference backends behind one small interface (DESIGN §7): chat completion (optionally
streamed), token counting with the model's own tokenizer, and the context length.

Built so far: `transformers` (any HF directory on torch). The llamacpp, mlx and openai
backends are the Memory OS issue's work; naming one gives a clear error, not a fallback.
"""

from __future__ import annotations

from typing import Iterator, Protocol

from soulctl.errors import InvalidInput, MissingDependency, NotFound
from soulctl.home import Home


class Engine(Protocol):
    name: str
    context_length: int

    def chat(self, messages: list[dict], max_tokens: int = 256, temperature: float = 0.0) -> str: ...

    def stream(self, messages: list[dict], max_tokens: int = 256,
               temperature: float = 0.0) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...

    def truncate(self, text: str, limit: int) -> str: ...

    def count_chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True) -> int: ...


def open_engine(home: Home, role: str = "soul") -> Engine:
    roles = home.config.roles
    if role not in roles:
        raise NotFound(f"no {role} role in soul.yaml", hint=f"roles: {', '.join(roles)}")
    spec = roles[role]
    backend = spec.backend
    if backend == "auto":
        backend = "transformers"
    if backend != "transformers":
        raise MissingDependency(f"the {backend} backend", why="not built in this version; "
                                "use backend: transformers in soul.yaml")
    if not spec.model:
        raise InvalidInput(f"roles.{role}.model is empty in soul.yaml")
    from soulctl.engine.transformers_engine import TransformersEngine

    path = home.resolve(spec.model)
    if not path.is_dir():
        raise NotFound(f"model {path} for role {role} does not exist",
                       hint="point roles.%s.model in soul.yaml at an HF model directory" % role)
    return TransformersEngine(path, context=spec.context)
