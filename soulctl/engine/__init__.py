"""Inference backends behind one small interface (DESIGN §7): chat completion (optionally
streamed), token counting with the serving model's own tokenizer, and the context length.

- `llamacpp`: a GGUF in process through llama-cpp-python; a generation (HF safetensors) is
  converted once with llama.cpp's converter and cached as a recorded derivative (generations/derived.py);
- `transformers`: any HF directory on torch (cpu, cuda, mps);
- `mlx`: mlx-lm on Apple silicon (and on Linux CPU with `mlx[cpu]`);
- `openai`: any OpenAI-compatible URL (llama-server, llama_cpp.server, mlx_lm.server, LM Studio,
  Ollama, another machine).

`auto` picks the fastest backend this machine has for the model: a URL → openai, a GGUF →
llamacpp, Apple silicon with mlx-lm → mlx, llama-cpp-python (with a GGUF or the converter for
it) → llamacpp, else transformers.
"""

from __future__ import annotations

import importlib.util
import platform
from dataclasses import dataclass
from pathlib import Path
from abc import ABC, abstractmethod
from typing import Iterator

from soulctl.engine.sampling import Sampling
from soulctl.errors import InvalidInput, MissingDependency, NotFound, SoulError
from soulctl.home import Home

# The package each backend needs, and the soulctl extra that installs it.
_NEEDS = {"llamacpp": ("llama_cpp", "llama-cpp-python", "llamacpp"),
          "mlx": ("mlx_lm", "mlx-lm", "mlx"),
          "transformers": ("torch", "torch", None)}


class Engine(ABC):
    """What every backend gives: chat (whole or streamed), token counts with the model's own
    tokenizer, its context length. Optional capabilities are declared here too, each with a
    flag that says whether a backend has it and a default that refuses:

    - `supports_tools` / `chat_tools`: the model calls functions (OpenAI tool calling);
    - `supports_probs` / `choice_probs`: token probabilities (the resonance judge).
    """

    name: str = "engine"
    context_length: int = 0
    generation: str | None = None  # the generation served, when the model is one
    supports_tools: bool = False
    supports_probs: bool = False

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

    def close(self) -> None:
        """Free the model."""


@dataclass(frozen=True)
class ModelRef:
    kind: str  # generation | hf | gguf | name (a model name on a server)
    path: Path | None
    generation: str | None = None
    name: str = ""


def installed(backend: str) -> bool:
    module = _NEEDS.get(backend, (None,))[0]
    try:
        return module is None or importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked install
        return False


def require(backend: str) -> None:
    if not installed(backend):
        module, package, extra = _NEEDS[backend]
        raise MissingDependency(package, extra, why=f"the {backend} backend needs it")


def apple_silicon() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def resolve_model(home: Home, role: str, model: str | None) -> ModelRef:
    """A role's `model`: a generation (path under generations/ or a ref such as `gen-0002`,
    `current`, `anchor`), an HF directory, or a GGUF file."""
    from soulctl import generations as gens

    if not model:
        raise InvalidInput(f"roles.{role}.model is empty in soul.yaml",
                           hint="set it to generations/current, an HF directory or a GGUF file")
    path = home.resolve(model)
    if path.exists():
        real = path.resolve()
        if real.parent == home.generations.resolve() and gens.GEN_ID.match(real.name):
            return ModelRef("generation", real, real.name, real.name)
        if real.is_dir():
            if not (real / "config.json").is_file():
                raise InvalidInput(f"{real} is not an HF model directory (no config.json)",
                                   hint=f"point roles.{role}.model at a model directory or a .gguf file")
            return ModelRef("hf", real, None, real.name)
        if real.suffix == ".gguf":
            return ModelRef("gguf", real, None, real.stem)
        raise InvalidInput(f"{real} is neither a model directory nor a .gguf file",
                           hint=f"fix roles.{role}.model in soul.yaml")
    if "/" not in model and not model.endswith(".gguf"):
        try:
            gid = gens.resolve(home, model)
        except SoulError:
            pass
        else:
            return ModelRef("generation", home.generations / gid, gid, gid)
    raise NotFound(f"model {model} for role {role} does not exist ({path})",
                   hint=f"point roles.{role}.model in soul.yaml at a generation, an HF directory or a .gguf file")


def choose_backend(ref: ModelRef) -> str:
    """`auto` for a local model (a role with a URL is served by the openai backend)."""
    if ref.kind == "gguf":
        return "llamacpp"
    if apple_silicon() and installed("mlx"):
        return "mlx"
    if installed("llamacpp"):
        from soulctl.generations.derived import can_serve_gguf

        if can_serve_gguf(ref):
            return "llamacpp"
    return "transformers"


def served_generation(home: Home, role: str = "soul") -> str | None:
    """The generation a role would serve, when it serves one from this home."""
    spec = home.config.roles.get(role)
    if spec is None or spec.url or spec.backend == "openai":
        return None
    return resolve_model(home, role, spec.model).generation


def open_engine(home: Home, role: str = "soul", backend: str | None = None, progress=None) -> Engine:
    """The engine for a role in soul.yaml (`backend` overrides the configured one)."""
    roles = home.config.roles
    if role not in roles:
        raise NotFound(f"no {role} role in soul.yaml", hint=f"roles: {', '.join(roles)}")
    spec = roles[role]
    backend = backend or spec.backend
    if backend == "openai" or (spec.url and backend in ("auto", "llamacpp")):  # llama-server is a URL
        from soulctl.engine.openai_engine import OpenAIEngine

        if not spec.url:
            raise InvalidInput(f"roles.{role}.backend is openai but roles.{role}.url is not set",
                               hint="set url: http://HOST:PORT/v1 in soul.yaml")
        return OpenAIEngine(spec.url, model=spec.model, context=spec.context, role=role)
    ref = resolve_model(home, role, spec.model)
    if backend == "auto":
        backend = choose_backend(ref)
    require(backend)
    if backend == "llamacpp":
        from soulctl.engine.llamacpp_engine import LlamaCppEngine
        from soulctl.generations.derived import gguf_for

        path = gguf_for(home, ref, spec.quant, progress)
        return LlamaCppEngine(path, context=spec.context, generation=ref.generation)
    if ref.kind == "gguf":
        raise InvalidInput(f"the {backend} backend needs an HF model directory, not a GGUF file",
                           hint=f"use backend: llamacpp for {ref.path.name}, or point model at a generation")
    if backend == "mlx":
        from soulctl.engine.mlx_engine import MlxEngine

        return MlxEngine(ref.path, context=spec.context, generation=ref.generation)
    from soulctl.engine.transformers_engine import TransformersEngine

    return TransformersEngine(ref.path, context=spec.context, generation=ref.generation)
