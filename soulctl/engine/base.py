"""The protocol every inference backend implements (DESIGN §7), declared in full: chat
(whole or streamed), token counts with the model's own tokenizer, the context length, and the
optional capabilities each backend says it has. Backends import this module, never the
package or the factory (factory.py), so nothing in engine/ imports in a circle."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from soulctl.engine.sampling import Sampling
from soulctl.errors import InvalidInput


class Engine(ABC):
    """What every backend gives: chat (whole or streamed), token counts with the model's own
    tokenizer, its context length. Optional capabilities are declared here too, each with a
    flag that says whether a backend has it and a default that refuses:

    - `supports_tools` / `chat_tools`: the model calls functions (OpenAI tool calling);
    - `supports_probs` / `choice_probs`: token probabilities (the resonance judge);
    - `supports_weights` / `torch_model`: the weights in torch, to measure losses on
      (generations/evaluate.py).
    """

    name: str = "engine"
    context_length: int = 0
    generation: str | None = None  # the generation served, when the model is one
    supports_tools: bool = False
    supports_probs: bool = False
    supports_weights: bool = False

    @abstractmethod
    def chat(self, messages: list[dict], max_tokens: int = 256, sampling: Sampling | None = None) -> str:
        """The reply; `sampling` defaults to greedy with the usual repeat penalty."""

    @abstractmethod
    def stream(self, messages: list[dict], max_tokens: int = 256,
               sampling: Sampling | None = None) -> Iterator[str]: ...

    @abstractmethod
    def count_tokens(self, text: str) -> int: ...

    @abstractmethod
    def truncate(self, text: str, limit: int) -> str: ...

    @abstractmethod
    def count_chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True) -> int: ...

    def chat_tools(self, messages: list[dict], tools: list[dict], max_tokens: int = 256,
                   tool_choice="auto") -> tuple[str, list[dict]]:
        """(text, calls): a reply that may call `tools` (OpenAI schemas)."""
        raise InvalidInput(f"the {self.name} backend does not call tools",
                           hint="serve the soul from a server with tool calling (backend: openai, tools: true)")

    def choice_probs(self, messages: list[dict], prefix: str, choices: list[str]) -> list[float]:
        """Probabilities of single-token `choices` right after the reply starts with `prefix`."""
        raise InvalidInput(f"the {self.name} backend gives no token probabilities",
                           hint="give the judging role a local backend: llamacpp, transformers or mlx")

    def torch_model(self):
        """(model, tokenizer): the weights this engine serves, in torch, for measuring."""
        raise InvalidInput(f"the {self.name} backend keeps no torch weights to measure",
                           hint="measure on the transformers backend")

    def close(self) -> None:
        """Free the model."""


@dataclass(frozen=True)
class ModelRef:
    kind: str  # generation | hf | gguf | name (a model name on a server)
    path: Path | None
    generation: str | None = None
    name: str = ""
