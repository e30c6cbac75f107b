"""The RAM budget before launch (DESIGN §8).

weights = params × bits-per-weight; KV = 2 × layers × kv_heads × head_dim × bytes(kv) × ctx ×
slots; plus llama.cpp compute buffers, prompt caches, the second model, the embedder, the
stores measured on disk and an OS reserve, against total RAM and, on Apple silicon, the share
of it the GPU may wire.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from soulctl.budget.modelfiles import ModelInfo, describe_model
from soulctl.errors import CheckFailed, InvalidInput

GiB = 1024**3
MiB = 1024**2

# Bytes per cached element of K or V (GGUF block sizes for the quantized cache types).
KV_BYTES: dict[str, float] = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}

N_UBATCH = 512  # llama.cpp's default micro-batch
PROMPT_CACHE_CAP = 8 * GiB  # llama-server's default --cache-ram (8192 MiB)
EMBEDDER_RUNTIME = 512 * MiB  # torch + sentence-transformers in the serving process (measured ~620 MiB RSS)
YELLOW_FRACTION = 0.10  # headroom below 10% of RAM is the yellow zone


@dataclass
class ModelLoad:
    """One served model: what it is and how it runs."""

    role: str
    info: ModelInfo
    context: int
    kv: str = "f16"
    slots: int = 1
    flash_attn: bool = True
    prompt_cache: int | None = None  # bytes; None = auto

    @property
    def kv_bytes_per_token(self) -> int:
        a = self.info.arch
        return int(2 * a.layers * a.kv_heads * a.head_dim * KV_BYTES[self.kv])

    @property
    def kv_bytes(self) -> int:
        return self.kv_bytes_per_token * self.context * self.slots

    @property
    def compute_bytes(self) -> int:
        """llama.cpp's compute buffer: the larger of the logits and the attention phase.

        Fitted on SmolLM2 at n_ctx 2048-16384 (llama.cpp reports 99.4 / 166.4 / 326.4 MiB
        without flash attention): logits n_ubatch×vocab×4, attention scores
        n_ubatch×ctx×(heads+1)×4 when not flash, plus n_ubatch×hidden×24 of activations.
        """
        a = self.info.arch
        logits = N_UBATCH * a.vocab * 4
        attention = 0 if self.flash_attn else N_UBATCH * self.context * (a.heads + 1) * 4
        return int(max(logits, attention) + N_UBATCH * a.hidden * 24) * self.slots

    @property
    def prompt_cache_bytes(self) -> int:
        if self.prompt_cache is not None:
            return self.prompt_cache
        return min(PROMPT_CACHE_CAP, self.kv_bytes_per_token * self.context)


@dataclass
class Budget:
    models: list[ModelLoad]
    ram_bytes: int
    os_reserve_bytes: int
    embedder_bytes: int = 0
    stores_bytes: int = 0
    apple_silicon: bool = False
    gpu_share: float | None = None
    yellow_fraction: float = YELLOW_FRACTION
    ram_source: str = "detected"
    notes: list[str] = field(default_factory=list)

    def components(self) -> list[dict]:
        rows = []
        for m in self.models:
            label = f"{m.info.name} {m.info.quant}, {m.info.params / 1e9:.2f}B params"
            if m.info.params < 1e9:
                label = f"{m.info.name} {m.info.quant}, {m.info.params / 1e6:.1f}M params"
            rows += [
                _row("weights", m.role, m.info.weights_bytes, True,
                     f"{label}, {m.info.bits_per_weight:.2f} bits/weight"),
                _row("kv cache", m.role, m.kv_bytes, True,
                     f"{m.context} ctx × {m.slots} slot(s), {m.kv}, {m.kv_bytes_per_token} B/token"),
                _row("compute buffers", m.role, m.compute_bytes, True,
                     f"n_ubatch {N_UBATCH}, flash attention {'on' if m.flash_attn else 'off'}"),
                _row("prompt cache", m.role, m.prompt_cache_bytes, False,
                     "host RAM for cached prompt states"),
            ]
        if self.embedder_bytes:
            rows.append(_row("embedder", "-", self.embedder_bytes, False, "weights + torch runtime"))
        rows.append(_row("stores", "-", self.stores_bytes, False, "data/ and corpora/ on disk"))
        rows.append(_row("os reserve", "-", self.os_reserve_bytes, False, "kernel, apps, file cache"))
        return rows

    @property
    def total_bytes(self) -> int:
        return sum(r["bytes"] for r in self.components())

    @property
    def gpu_bytes(self) -> int:
        return sum(r["bytes"] for r in self.components() if r["gpu"])

    @property
    def gpu_limit_bytes(self) -> int | None:
        if not self.apple_silicon:
            return None
        return int(self.ram_bytes * (self.gpu_share or default_gpu_share(self.ram_bytes)))

    @property
    def headroom_bytes(self) -> int:
        return self.ram_bytes - self.total_bytes

    @property
    def zone(self) -> str:
        if self.headroom_bytes < 0:
            return "red"
        limit = self.gpu_limit_bytes
        if self.headroom_bytes < self.yellow_fraction * self.ram_bytes or (
            limit is not None and self.gpu_bytes > limit
        ):
            return "yellow"
        return "green"

    @property
    def fits(self) -> bool:
        return self.headroom_bytes >= 0

    def warnings(self) -> list[str]:
        out = list(self.notes)
        limit = self.gpu_limit_bytes
        if limit is not None and self.gpu_bytes > limit:
            need_mb = -(-self.gpu_bytes // MiB) + 1024
            out.append(
                f"models need {self.gpu_bytes / 1e9:.1f} GB of GPU-wired memory, above the default "
                f"{limit / 1e9:.1f} GB limit; raise it: sudo sysctl iogpu.wired_limit_mb={need_mb}")
        for m in self.models:
            if m.info.arch.context and m.context > m.info.arch.context:
                out.append(f"{m.role}: context {m.context} exceeds the model's trained "
                           f"{m.info.arch.context}")
        return out

    def as_dict(self) -> dict:
        soul = self.models[0] if self.models else None
        return {
            "weights_bytes": soul.info.weights_bytes if soul else 0,
            "kv_bytes_per_token": soul.kv_bytes_per_token if soul else 0,
            "kv_bytes": soul.kv_bytes if soul else 0,
            "context": soul.context if soul else 0,
            "total_bytes": self.total_bytes,
            "ram_bytes": self.ram_bytes,
            "ram_source": self.ram_source,
            "headroom_bytes": self.headroom_bytes,
            "zone": self.zone,
            "fits": self.fits,
            "apple_silicon": self.apple_silicon,
            "gpu_bytes": self.gpu_bytes,
            "gpu_limit_bytes": self.gpu_limit_bytes,
            "models": [
                {"role": m.role, **m.info.as_dict(), "context": m.context, "kv": m.kv,
                 "slots": m.slots, "kv_bytes_per_token": m.kv_bytes_per_token,
                 "kv_bytes": m.kv_bytes, "compute_bytes": m.compute_bytes,
                 "prompt_cache_bytes": m.prompt_cache_bytes}
                for m in self.models
            ],
            "components": self.components(),
            "warnings": self.warnings(),
        }


def _row(name: str, role: str, size: int, gpu: bool, detail: str) -> dict:
    return {"name": name, "role": role, "bytes": int(size), "gpu": gpu, "detail": detail}


def fit_context(budget: Budget, headroom_bytes: int, step: int = 256,
                limit: int | None = None) -> int:
    """Largest context (a multiple of `step`) for the first model that keeps `headroom_bytes`."""
    model = budget.models[0]
    original = model.context
    upper = limit or max(model.info.arch.context or 0, original, step)
    lo, hi = 0, upper // step

    def ok(n_steps: int) -> bool:
        model.context = n_steps * step
        return budget.headroom_bytes >= headroom_bytes

    try:
        if not ok(1):
            raise CheckFailed(
                f"even {step} tokens of context leave less than {headroom_bytes / GiB:.1f} GiB free",
                hint="use a smaller quant (--quant), drop the majordomo, or add RAM")
        lo = 1
        while lo < hi:  # ok(lo) holds; find the last step that still holds
            mid = (lo + hi + 1) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo * step
    finally:
        model.context = original


def fit_to(budget: Budget, headroom: str | None = None) -> dict:
    """`budget --fit`: the soul's context set to the largest that keeps `headroom` (a size or a
    share of RAM; default the yellow line, 10%) free; returns what was solved."""
    target = (parse_headroom(headroom, budget.ram_bytes) if headroom
              else int(budget.yellow_fraction * budget.ram_bytes))
    fitted = fit_context(budget, target)
    budget.models[0].context = fitted
    return {"context": fitted, "headroom_target_bytes": target,
            "model_context": budget.models[0].info.arch.context}


def detect_ram() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        raise InvalidInput("cannot detect total RAM", hint="pass --ram, e.g. --ram 512GiB") from None


def is_apple_silicon() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def default_gpu_share(ram_bytes: int) -> float:
    """macOS lets Metal wire about 3/4 of RAM above 36 GB, 2/3 below (iogpu.wired_limit_mb)."""
    return 0.75 if ram_bytes > 36 * GiB else 2 / 3


def default_os_reserve(ram_bytes: int, apple: bool) -> int:
    return int((4 * GiB if apple else 1 * GiB) + 0.02 * ram_bytes)


def dir_bytes(path: Path) -> int:
    total = 0
    if not path.exists():
        return 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def stores_bytes(paths: list[Path]) -> int:
    """What the soul keeps resident besides models: the files of its log on this machine (the
    store names them) and its corpus indexes."""
    return sum(dir_bytes(p) if p.is_dir() else p.stat().st_size for p in paths if p.exists())


def embedder_bytes(model_dir: Path | None) -> int:
    weights = sum(p.stat().st_size for p in model_dir.glob("*.safetensors")) if model_dir else 0
    return weights + EMBEDDER_RUNTIME


def load_model(role: str, ref: str, quant: str | None, context: int | None, kv: str,
               slots: int, flash_attn: bool, base_dir: Path | None = None,
               prompt_cache: int | None = None) -> ModelLoad:
    info = describe_model(ref, quant, base_dir)
    kv = kv.lower()
    if kv not in KV_BYTES:
        raise InvalidInput(f"unknown KV cache type {kv!r}", hint=f"use one of {', '.join(KV_BYTES)}")
    ctx = context or info.arch.context or 4096
    if ctx < 1:
        raise InvalidInput(f"context must be positive, got {ctx}")
    return ModelLoad(role, info, ctx, kv, slots, flash_attn, prompt_cache)


def parse_headroom(text: str, ram_bytes: int) -> int:
    """A headroom target: a size (16GiB) or a percentage of RAM (10%)."""
    from soulctl.units import parse_size

    text = text.strip()
    if text.endswith("%"):
        try:
            return int(float(text[:-1]) / 100 * ram_bytes)
        except ValueError:
            raise InvalidInput(f"bad headroom {text!r}", hint="write e.g. 10% or 16GiB") from None
    return parse_size(text, "headroom")
