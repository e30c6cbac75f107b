"""soul.yaml: schema, defaults and validation with file:line errors (DESIGN §3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from soulctl.errors import ConfigError, NotFound

Backend = Literal["auto", "llamacpp", "transformers", "mlx", "openai"]
KV_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SamplingConfig(_Strict):
    """How a role's replies are sampled (soulctl/engine/sampling.py); `chat` flags and API
    requests override it per turn. The defaults were measured on the embedded model
    (tests/bench/bench_upkeep.py): greedy decoding looped."""

    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(0.9, gt=0, le=1)
    top_k: int = Field(40, ge=0)
    min_p: float = Field(0.05, ge=0, lt=1)
    repeat_penalty: float = Field(1.1, ge=1, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    seed: int | None = Field(None, ge=0)  # a fixed seed: the same reply to the same prompt
    max_reply_tokens: int | None = Field(None, ge=1)  # at most memory.reply_tokens (the sector)


class Role(_Strict):
    """One model role (soul, majordomo): how to run it and how much context it gets."""

    backend: Backend = "auto"
    model: str | None = "generations/current"  # path (relative to home), preset name or GGUF
    url: str | None = None  # for backend openai
    quant: str | None = None  # budget: precision when `model` is a preset
    context: int = Field(8192, ge=256)
    kv: str = "f16"
    slots: int = Field(1, ge=1)
    tools: bool = False  # the model calls the soul's tools (a server with tool calling: openai backend)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)

    @field_validator("kv")
    @classmethod
    def _kv(cls, value: str) -> str:
        if value.lower() not in KV_TYPES:
            raise ValueError(f"kv must be one of {', '.join(KV_TYPES)}")
        return value.lower()


class EmbedderConfig(_Strict):
    model: str = "all-MiniLM-L6-v2"  # the bundled one, or a path to a sentence-transformers model
    batch_size: int = Field(64, ge=1)
    runtime: Literal["auto", "numpy", "torch"] = "auto"  # numpy: the light path (soulctl/embed/light.py)


class MemoryConfig(_Strict):
    """Memory OS sector sizes in tokens of the serving model (DESIGN §5)."""

    self_tokens: int = Field(1024, ge=64)
    notebook_tokens: int = Field(2048, ge=64)
    retrieved_tokens: int = Field(1024, ge=0)
    window_tokens: int = Field(3072, ge=256)
    reply_tokens: int = Field(512, ge=16)
    warn: float = Field(0.80, gt=0, le=1)
    pressure: float = Field(0.95, gt=0, le=1)
    capture: bool = True  # what the user states goes into the notebook in their words (memory/facts.py)


class BudgetConfig(_Strict):
    ram: str | int = "auto"  # total RAM; auto detects
    os_reserve: str | int = "auto"
    gpu_share: float | None = Field(None, gt=0, le=1)  # Apple silicon: GPU-usable share of RAM
    headroom: str | int = "auto"


# Never handed to the coding agent, whatever hands.env says: soulctl's own secrets and the
# store's credentials.
HANDS_NEVER = ("SOULCTL_*", "PG*")


class HandsConfig(_Strict):
    command: list[str] = ["claude", "-p", "--output-format", "json"]
    timeout_s: int = Field(1800, ge=1)
    # the agent's environment beyond the basics (PATH, HOME, LANG, LC_*, TERM …): names or
    # shell patterns of its own auth variables
    env: list[str] = ["ANTHROPIC_*", "CLAUDE_CODE_*"]
    # invoke_agent over MCP: auto = on stdio, and over HTTP only behind a token; true = also a
    # loopback server without one; false = never over MCP
    expose: bool | Literal["auto"] = "auto"

    @field_validator("env")
    @classmethod
    def _env(cls, names: list[str]) -> list[str]:
        from fnmatch import fnmatchcase

        for name in names:
            if any(fnmatchcase(name, never) for never in HANDS_NEVER):
                raise ValueError(f"{name} is soulctl's own secret and is never handed to the agent")
        return names


class SoulConfig(_Strict):
    version: int = 1
    roles: dict[str, Role] = Field(default_factory=lambda: {"soul": Role()})
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    store: str = "duckdb:data/soul.duckdb"
    hands: HandsConfig = Field(default_factory=HandsConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)

    @field_validator("roles")
    @classmethod
    def _soul_role(cls, roles: dict[str, Role]) -> dict[str, Role]:
        if "soul" not in roles:
            raise ValueError("roles must define `soul`")
        unknown = set(roles) - {"soul", "majordomo"}
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(sorted(unknown))}; roles are soul, majordomo")
        return roles


DEFAULT_SOUL_YAML = """\
# soul.yaml — this soul home's configuration. Paths are relative to this file.
version: 1
roles:
  soul:
    backend: auto            # auto | llamacpp | transformers | mlx | openai
    model: generations/current
    context: 8192
    kv: f16                  # KV cache dtype: f16 | bf16 | q8_0 | q4_0
    slots: 1
    tools: false             # true: the model calls the soul's tools (a server with tool calling)
    sampling:                # per reply; `chat` flags and API requests override (docs/guides/memory.md: sampling)
      temperature: 0.7
      top_p: 0.9
      top_k: 40
      min_p: 0.05
      repeat_penalty: 1.1
      seed: null             # a number: the same reply to the same prompt
      max_reply_tokens: null # at most memory.reply_tokens
  # majordomo:               # an optional second model that keeps the notebook
  #   backend: openai
  #   url: http://127.0.0.1:8081/v1
  #   model: hermes-4-70b    # a preset name, an HF directory or a GGUF file
  #   quant: q8_0
  #   context: 131072
embedder:
  model: all-MiniLM-L6-v2    # bundled; or a path to any sentence-transformers model
  runtime: auto              # auto | numpy (light: fast start) | torch (fast on big batches)
memory:                      # Memory OS sectors, in tokens of the serving model
  self_tokens: 1024
  notebook_tokens: 2048
  retrieved_tokens: 1024
  window_tokens: 3072
  reply_tokens: 512
  warn: 0.80
  pressure: 0.95
  capture: true              # what the user states, kept in the notebook in their words, cited
store: duckdb:data/soul.duckdb
hands:
  command: [claude, -p, --output-format, json]
  env: [ANTHROPIC_*, CLAUDE_CODE_*]   # the agent's own variables it may see (never SOULCTL_*, PG*)
  expose: auto               # invoke_agent over MCP: auto (stdio; HTTP behind a token) | true | false
budget:
  ram: auto                  # or e.g. 512GiB
  os_reserve: auto
"""


def load_config(path: Path) -> SoulConfig:
    from soulctl.infile import LIMITS, read_bounded

    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path} does not exist", hint="run `soulctl init` to create a soul home")
    data = read_bounded(path, LIMITS["config"], "soul.yaml")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start})",
                          hint="restore it from a backup, or write it anew (docs/guides/home.md)") from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "soul.yaml") -> SoulConfig:
    data, root = _load_yaml(text, source)
    try:
        return SoulConfig.model_validate(data or {})
    except ValidationError as exc:
        raise _config_error(exc, root, source) from None


def validate_mapping(model: type[BaseModel], text: str, source: str) -> BaseModel:
    """Validate a YAML document (a recipe) against a schema, errors carrying file:line."""
    data, root = _load_yaml(text, source)
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        raise _config_error(exc, root, source) from None


def _load_yaml(text: str, source: str) -> tuple[Any, Any]:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}", hint=f"fix the YAML in {source}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a configuration",
                          hint=f"fix the YAML in {source}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{source}:1: expected a mapping at the top level")
    return data, root


def _config_error(exc: ValidationError, root: Any, source: str) -> ConfigError:
    err = exc.errors()[0]
    loc = [part for part in err["loc"] if not isinstance(part, str) or not part.startswith("function-")]
    line = _line_of(root, loc)
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = f"unknown key `{loc[-1]}`"
    where = f"{source}:{line}" if line else source
    return ConfigError(f"{where}: {dotted}: {message}", hint=f"fix {source} (see docs/guides/home.md)")


def _line_of(node: Any, loc: list) -> int | None:
    """1-based line of the YAML node at `loc` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            if match is None:
                key = next((k for k, _ in node.value if k.value == str(part)), None)
                return key.start_mark.line + 1 if key is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def set_store(home, url: str) -> None:
    """Point soul.yaml's `store:` at `url`, keeping the rest of the file as the user wrote it."""
    import os
    import re

    path = home.root / "soul.yaml"
    text = path.read_text()
    line = f"store: {url}"
    text, n = re.subn(r"(?m)^store:.*$", line, text)
    if not n:
        text = text.rstrip("\n") + "\n" + line + "\n"
    parse_config(text, str(path))  # still valid, or nothing changes
    tmp = path.with_name(f".soul.yaml.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)

