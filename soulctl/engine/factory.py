"""Opening an engine for a role of soul.yaml: which model it names (a generation, an HF
directory, a GGUF, a name on a server), which backend serves it (`auto` picks the fastest this
machine has) — backends are looked up by name in BACKENDS, each a module that opens itself and
may prepare a generation for serving (the GGUF llama.cpp reads).
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
from pathlib import Path

from soulctl.engine.base import Engine, ModelRef
from soulctl.errors import InvalidInput, MissingDependency, NotFound, SoulError
from soulctl.home import Home

# name → the module that serves it, the package it needs and the soulctl extra that installs it.
# A new backend is a module with `open_backend` (and, if it serves a converted file, `prepare`)
# plus a line here.
BACKENDS = {
    "llamacpp": ("soulctl.engine.llamacpp_engine", "llama_cpp", "llama-cpp-python", "llamacpp"),
    "transformers": ("soulctl.engine.transformers_engine", "torch", "torch", None),
    "mlx": ("soulctl.engine.mlx_engine", "mlx_lm", "mlx-lm", "mlx"),
    "openai": ("soulctl.engine.openai_engine", None, None, None),
}


def backend_module(name: str):
    """The module that implements backend `name` (imported now, never before it is needed)."""
    if name not in BACKENDS:
        raise InvalidInput(f"unknown backend {name!r}", hint=f"backends: auto, {', '.join(BACKENDS)}")
    require(name)
    return importlib.import_module(BACKENDS[name][0])


def installed(backend: str) -> bool:
    module = BACKENDS.get(backend, (None, None))[1]
    try:
        return module is None or importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked install
        return False


def require(backend: str) -> None:
    if not installed(backend):
        _, _, package, extra = BACKENDS[backend]
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
    spec, ref, backend = _plan(home, role, backend)
    return backend_module(backend).open_backend(home, role, spec, ref, progress)


def open_generation(home: Home, gid: str, backend: str, progress=None) -> Engine:
    """An engine on one generation of this home (not a role's model): what the evaluator
    measures. The soul role's settings apply (context, quant)."""
    spec = home.config.roles["soul"].model_copy(update={"model": gid, "url": None})
    return backend_module(backend).open_backend(home, "soul", spec, resolve_model(home, "soul", gid), progress)


def backend_for(home: Home, role: str = "soul") -> str:
    """The backend that serves `role` (what `auto` picks on this machine)."""
    return _plan(home, role, None)[2]


def prepares(home: Home, role: str = "soul") -> bool:
    """Whether `role`'s backend makes something of a generation before serving it."""
    return hasattr(backend_module(backend_for(home, role)), "prepare")


def prepare(home: Home, role: str, model: str, progress=None) -> Path | None:
    """Make ready what the role's backend would serve of `model` (a generation), before it is
    asked to: a file it converts once (llama.cpp's GGUF). None when there is nothing to make."""
    spec = home.config.roles[role]
    spec, ref, backend = _plan(home, role, None, spec.model_copy(update={"model": model}))
    module = backend_module(backend)
    return module.prepare(home, spec, ref, progress) if hasattr(module, "prepare") and ref is not None else None


def _plan(home: Home, role: str, backend: str | None, spec=None):
    """(the role's spec, its model, the backend that serves it)."""
    roles = home.config.roles
    if role not in roles:
        raise NotFound(f"no {role} role in soul.yaml", hint=f"roles: {', '.join(roles)}")
    spec = spec or roles[role]
    backend = backend or spec.backend
    if backend == "openai" or (spec.url and backend in ("auto", "llamacpp")):  # llama-server is a URL
        if not spec.url:
            raise InvalidInput(f"roles.{role}.backend is openai but roles.{role}.url is not set",
                               hint="set url: http://HOST:PORT/v1 in soul.yaml")
        return spec, None, "openai"
    ref = resolve_model(home, role, spec.model)
    if backend == "auto":
        backend = choose_backend(ref)
    if ref.kind == "gguf" and backend != "llamacpp":
        raise InvalidInput(f"the {backend} backend needs an HF model directory, not a GGUF file",
                           hint=f"use backend: llamacpp for {ref.path.name}, or point model at a generation")
    return spec, ref, backend
