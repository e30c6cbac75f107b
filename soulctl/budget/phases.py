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


def plan(serve: Budget, dream: list[dict], touched: tuple[str, ...], stored_bytes: int,
         layers_folded: int = 2) -> dict:
    """The night beside `serve`: the dream's components (what its trainer says it needs), the
    merge of a layer touching `touched` modules, and whether each fits beside the running
    server or only beside a released one."""
    arch = serve.models[0].info.arch
    outs = {"q_proj": arch.heads * arch.head_dim, "k_proj": arch.kv_heads * arch.head_dim,
            "v_proj": arch.kv_heads * arch.head_dim}
    largest = max(arch.hidden * outs.get(t, arch.hidden) for t in touched)
    merge = merge_components(largest, stored_bytes, layers_folded)
    return {"dream": dream, "merge": merge, "night": night(serve, dream, merge)}


def stored_bytes_of(serve: Budget) -> int:
    """Bytes per weight of the soul's generation on disk (what a merge reads)."""
    return 2 if serve.models[0].info.quant in ("bf16", "f16") else 4


def lora_params(arch: Arch, r: int, targets) -> int:
    """A LoRA's parameters: r × (in + out) for each target of each layer."""
    outs = {"q_proj": arch.heads * arch.head_dim, "k_proj": arch.kv_heads * arch.head_dim,
            "v_proj": arch.kv_heads * arch.head_dim, "o_proj": arch.hidden}
    ins = {"o_proj": arch.heads * arch.head_dim}
    return arch.layers * sum(r * (ins.get(t, arch.hidden) + outs.get(t, arch.hidden)) for t in targets)


def lora_dream(arch: Arch, params: int, recipe, tokens: int, dtype_bytes: int, runtime: int,
               trainer: str) -> list[dict]:
    """A LoRA dream's RAM by component: the weights at the trainer's dtype, the LoRA with its
    gradients and AdamW's two moments, the activations for the longest example at the recipe's
    batch (less with gradient checkpointing), the logits, the trainer's runtime."""
    train = recipe.train
    lora = lora_params(arch, recipe.lora.r, recipe.lora.target_modules)
    n = train.batch_size * tokens
    act = dtype_bytes  # activations are kept in the dtype the trainer computes in
    per_layer = n * (ACT_HIDDEN * arch.hidden + ACT_INTERMEDIATE * arch.intermediate) * act \
        + train.batch_size * arch.heads * tokens ** 2 * act * ATTN_SCORES
    activations = arch.layers * per_layer
    if train.gradient_checkpointing:  # each layer's input kept, the layers recomputed in the backward pass
        activations = arch.layers * n * arch.hidden * act + CHECKPOINTED * activations
    return [
        _row("weights", params * dtype_bytes, f"{params / 1e9:.2f}B params at {dtype_bytes} bytes ({trainer})"),
        _row("lora + adam", lora * 4 * 4, f"{lora / 1e6:.1f}M LoRA params: weights, gradients, 2 moments (float32)"),
        _row("activations", activations, f"batch {train.batch_size} × {tokens} tokens, "
             + ("gradient checkpointing" if train.gradient_checkpointing else "no checkpointing")),
        _row("logits", n * arch.vocab * 4 * LOGITS_COPIES, f"{arch.vocab} vocab × {n} tokens"),
        _row("runtime", runtime, f"{'mlx' if trainer == 'mlx' else 'torch'} and the trainer"),
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


__all__ = ["GiB", "MiB", "Phase", "lora_dream", "merge_components", "night", "plan", "served_while_released",
           "lora_params", "stored_bytes_of"]
