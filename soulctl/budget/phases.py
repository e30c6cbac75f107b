"""The machine's phases: serving by day, dreaming and merging by night (DESIGN §12).

- **serve**: the Budget of `memory.py` — weights, KV cache, compute buffers, prompt caches, the
  majordomo, the embedder, the stores, the OS.
- **dream**: a LoRA trained over the soul's generation — its weights at the trainer's dtype, the
  LoRA's parameters with their gradients and AdamW's two moments, the activations autograd
  keeps for the longest example of the buffer at the recipe's batch (with gradient
  checkpointing, only each layer's input and one layer's working set), the logits, and the
  trainer's own runtime (torch or mlx).
- **merge**: streamed tensor by tensor, so what matters is the largest tensor an adapter
  touches: the anchor's bytes, their float32 copy, each layer's delta stacked, trimmed and
  masked, the result — and torch's runtime.
- **night**: dream and merge each run beside what the server keeps; released, the server keeps
  its majordomo, embedder and stores but not the soul's weights, KV cache and buffers.

The constants below were fitted to peak RSS measured on the embedded model
(tests/bench/bench_phases.py prints the budget beside the measurement).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from soulctl.budget.memory import GiB, MiB, Budget
from soulctl.budget.modelfiles import Arch

TORCH_RUNTIME = 640 * MiB  # python, torch, transformers and peft imported, a model's graph (measured)
MERGE_RUNTIME = 340 * MiB  # python, torch and safetensors: the merge needs no transformers (measured)
MLX_RUNTIME = 320 * MiB
# float32 values autograd keeps per token per layer, in units of the hidden size and of the
# MLP's intermediate size, training without checkpointing; and the attention's heads × tokens²
# (fitted to peak RSS on SmolLM2 at 84, 171 and 387 tokens, batch 2: within 5%)
ACT_HIDDEN = 17
ACT_INTERMEDIATE = 5
ATTN_SCORES = 1
# with gradient checkpointing (transformers' non-reentrant, under peft) the activations measured
# about half of those without (SmolLM2, 387 tokens: 3,399 MiB peak → 2,381 MiB), not one layer's
CHECKPOINTED = 0.5
LOGITS_COPIES = 3  # the logits, their float copy, their gradient
MERGE_COPIES = 5  # per layer stacked in a fold: delta, trimmed, weighted, sign mask, agreement


@dataclass
class Phase:
    """One phase: what it needs, what stays beside it, against RAM."""

    name: str
    components: list[dict]  # name, bytes, detail
    beside: int  # what the server keeps meanwhile
    ram: int
    notes: list[str] = field(default_factory=list)

    @property
    def own_bytes(self) -> int:
        return sum(c["bytes"] for c in self.components)

    @property
    def total_bytes(self) -> int:
        return self.own_bytes + self.beside

    @property
    def headroom_bytes(self) -> int:
        return self.ram - self.total_bytes

    @property
    def fits(self) -> bool:
        return self.headroom_bytes >= 0

    def as_dict(self) -> dict:
        return {"phase": self.name, "bytes": self.own_bytes, "beside_bytes": self.beside,
                "total_bytes": self.total_bytes, "ram_bytes": self.ram, "headroom_bytes": self.headroom_bytes,
                "fits": self.fits, "components": self.components, "notes": self.notes}


@dataclass
class Training:
    """What a dream needs to know of its recipe and buffer."""

    trainer: str = "peft"  # peft (torch) | mlx
    dtype_bytes: int = 4  # the trainer's weights: float32 on torch, the stored dtype on mlx
    stored_bytes: int = 4  # the generation's weights on disk (what the merge reads)
    r: int = 32
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")
    batch: int = 2
    tokens: int = 512  # the buffer's longest example (at most the recipe's max_seq_len)
    checkpointing: bool = False


def default_training(serve: Budget) -> Training:
    """A dream by the shipped recipe for a model the budget knows only by name (a preset, a
    profile): mlx in the published dtype on Apple silicon, peft in float32 elsewhere."""
    stored = 2 if serve.models[0].info.quant in ("bf16", "f16") else 4
    if serve.apple_silicon:
        return Training(trainer="mlx", dtype_bytes=stored, stored_bytes=stored)
    return Training(stored_bytes=stored)


def plan(serve: Budget, training: Training, layers_folded: int = 2) -> dict:
    """The dream and the merge of the soul's model, and the night's plan beside `serve`."""
    info = serve.models[0].info
    arch = info.arch
    dream = dream_components(arch, info.params, training)
    outs = {"q_proj": arch.heads * arch.head_dim, "k_proj": arch.kv_heads * arch.head_dim,
            "v_proj": arch.kv_heads * arch.head_dim}
    largest = max(arch.hidden * outs.get(t, arch.hidden) for t in training.targets)
    merge = merge_components(largest, training.stored_bytes, layers_folded)
    return {"dream": dream, "merge": merge, "night": night(serve, dream, merge), "training": dict(training.__dict__)}


def report(serve: Budget, training: Training) -> dict:
    """Every phase for `budget`: serve; the dream without and with gradient checkpointing (the
    recipe's choice first); the merge; and the night with the recipe's dream."""
    from dataclasses import replace

    chosen = plan(serve, training)
    other = plan(serve, replace(training, checkpointing=not training.checkpointing))
    dream = {("with" if t.checkpointing else "without") + "_checkpointing": {
        "bytes": sum(c["bytes"] for c in p["dream"]), "components": p["dream"]}
        for t, p in ((training, chosen), (replace(training, checkpointing=not training.checkpointing), other))}
    return {"serve": {"bytes": serve.total_bytes, "fits": serve.fits},
            "dream": {**dream, "recipe": "with_checkpointing" if training.checkpointing else "without_checkpointing",
                      "training": chosen["training"]},
            "merge": {"bytes": sum(c["bytes"] for c in chosen["merge"]), "components": chosen["merge"]},
            "night": chosen["night"]}


def lora_params(arch: Arch, r: int, targets) -> int:
    """A LoRA's parameters: r × (in + out) for each target of each layer."""
    outs = {"q_proj": arch.heads * arch.head_dim, "k_proj": arch.kv_heads * arch.head_dim,
            "v_proj": arch.kv_heads * arch.head_dim, "o_proj": arch.hidden}
    ins = {"o_proj": arch.heads * arch.head_dim}
    return arch.layers * sum(r * (ins.get(t, arch.hidden) + outs.get(t, arch.hidden)) for t in targets)


def dream_components(arch: Arch, params: int, t: Training) -> list[dict]:
    lora = lora_params(arch, t.r, t.targets)
    n = t.batch * t.tokens
    act = t.dtype_bytes  # activations are kept in the dtype the trainer computes in
    per_layer = n * (ACT_HIDDEN * arch.hidden + ACT_INTERMEDIATE * arch.intermediate) * act \
        + t.batch * arch.heads * t.tokens ** 2 * act * ATTN_SCORES
    activations = arch.layers * per_layer
    if t.checkpointing:  # each layer's input kept, the layers recomputed in the backward pass
        activations = arch.layers * n * arch.hidden * act + CHECKPOINTED * activations
    runtime = MLX_RUNTIME if t.trainer == "mlx" else TORCH_RUNTIME
    return [
        _row("weights", params * t.dtype_bytes, f"{params / 1e9:.2f}B params at {t.dtype_bytes} bytes ({t.trainer})"),
        _row("lora + adam", lora * 4 * 4, f"{lora / 1e6:.1f}M LoRA params: weights, gradients, 2 moments (float32)"),
        _row("activations", activations, f"batch {t.batch} × {t.tokens} tokens, "
             + ("gradient checkpointing" if t.checkpointing else "no checkpointing")),
        _row("logits", n * arch.vocab * 4 * LOGITS_COPIES, f"{arch.vocab} vocab × {n} tokens"),
        _row("runtime", runtime, f"{'mlx' if t.trainer == 'mlx' else 'torch'} and the trainer"),
    ]


def merge_components(largest: int, stored_bytes: int, layers_folded: int) -> list[dict]:
    """`largest`: elements of the largest tensor an adapter touches; `layers_folded`: the layers
    each tensor's fold stacks (2 for an accumulated delta and the new layer)."""
    return [
        _row("tensor", largest * (stored_bytes + 4 + 4), "the anchor's bytes, its float32 copy, the result"),
        _row("layer deltas", largest * 4 * MERGE_COPIES * layers_folded,
             f"{layers_folded} layer(s) stacked, trimmed and elected"),
        _row("runtime", MERGE_RUNTIME, "torch and safetensors"),
    ]


def served_while_released(serve: Budget) -> int:
    """What a released server keeps: everything but the soul's weights, KV cache, compute
    buffers and prompt cache (the majordomo, the embedder, the stores and the OS stay)."""
    return sum(c["bytes"] for c in serve.components() if c["role"] != "soul")


def night(serve: Budget, dream: list[dict], merge: list[dict]) -> dict:
    """The night's plan: each of dream and merge beside the running server, and beside a
    released one; whether a release is needed, and whether even that is enough."""
    full, released = serve.total_bytes, served_while_released(serve)
    ram = serve.ram_bytes
    phases = {name: {"beside_server": Phase(name, comps, full, ram), "server_released": Phase(name, comps, released, ram)}
              for name, comps in (("dream", dream), ("merge", merge))}
    fits_beside = all(p["beside_server"].fits for p in phases.values())
    fits_released = all(p["server_released"].fits for p in phases.values())
    return {"release": "not needed" if fits_beside else "needed" if fits_released else "not enough",
            "fits": fits_released, "phases": {n: {k: v.as_dict() for k, v in p.items()} for n, p in phases.items()}}


def _row(name: str, size: int, detail: str) -> dict:
    return {"name": name, "bytes": int(size), "detail": detail}


__all__ = ["GiB", "MiB", "Phase", "Training", "dream_components", "merge_components", "night",
           "served_while_released", "lora_params"]
