"""How a reply is sampled: one settings object from soul.yaml (per role), `chat` flags and the
API, handed to every backend, each mapping what it supports.

Greedy decoding with one penalty made the embedded model loop (a paragraph five times, one
apology six times): the defaults sample lightly instead, chosen by measurement
(tests/bench/bench_upkeep.py prints the share of replies that repeat a sentence under each).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from soulctl.errors import InvalidInput

# Every field a backend may map, and what it means when left at its neutral value.
NEUTRAL = {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0,
           "frequency_penalty": 0.0, "presence_penalty": 0.0, "seed": None, "json": None}
# The backends that do not have a field refuse a request that sets it (never ignore it).
UNSUPPORTED = {"transformers": ("frequency_penalty", "presence_penalty", "json"),
               "mlx": ("frequency_penalty", "presence_penalty", "json")}
NAMES = {"json": "response_format (JSON output)"}  # a field's name where it came from


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0
    repeat_penalty: float = 1.15  # what every backend used before sampling was a setting
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None  # None: a fresh draw per reply
    json: dict | None = None  # constrain the reply to JSON: {} any object, else a JSON schema

    def but(self, **changes) -> Sampling:
        """These settings with `changes` that are not None."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def greedy(self) -> Sampling:
        """The same penalties without randomness: for rewrites, judged and re-checked."""
        return replace(self, temperature=0.0, seed=None)

    def as_dict(self) -> dict:
        return asdict(self)

    def check(self, backend: str) -> Sampling:
        """Refuse, by name, a setting this backend cannot apply."""
        for name in UNSUPPORTED.get(backend, ()):
            if getattr(self, name) != NEUTRAL[name]:
                raise InvalidInput(f"{NAMES.get(name, name)} is not supported by the {backend} backend",
                                   hint="serve the soul on llamacpp (grammars) or an openai URL")
        return self


GREEDY = Sampling()
FIELDS = tuple(f.name for f in fields(Sampling))


def of_role(spec) -> Sampling:
    """A role's sampling from soul.yaml (home.config.SamplingConfig)."""
    cfg = spec.sampling
    return Sampling(**{name: getattr(cfg, name) for name in FIELDS if name != "json"})
