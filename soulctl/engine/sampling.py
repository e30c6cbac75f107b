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
# What each setting may be, wherever it comes from (soul.yaml, `chat` flags, the API): one table.
LIMITS = {
    "temperature": (lambda v: 0 <= v <= 2, "a number from 0 to 2"),
    "top_p": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "frequency_penalty": (lambda v: -2 <= v <= 2, "a number from -2 to 2"),
    "presence_penalty": (lambda v: -2 <= v <= 2, "a number from -2 to 2"),
    "seed": (lambda v: 0 <= v < 2**63, "a non-negative integer"),
    "top_k": (lambda v: v >= 0, "a non-negative integer"),
    "min_p": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "repeat_penalty": (lambda v: 1 <= v <= 2, "a number from 1 to 2"),
}
INTEGERS = ("seed", "top_k")


def out_of_range(name: str, value) -> str | None:
    """Why `value` cannot be setting `name` (None when it can): NaN and infinities never can."""
    import math

    check, why = LIMITS[name]
    if isinstance(value, float) and not math.isfinite(value):
        return why
    return None if check(value) else why


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

    def reply_seed(self) -> int:
        """The seed of one reply: the fixed one, else a fresh draw from the OS (every backend
        seeds its sampler the same way in each new process, so "no seed" must be drawn here)."""
        if self.seed is not None:
            return self.seed
        import secrets

        return secrets.randbits(31)

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
