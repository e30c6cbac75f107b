"""Weight drift between generations: per module type (q/k/v/o projections, MLP, embeddings)
and overall, as the relative distance ‖ΔW‖ / ‖W‖. Merge measures it while it streams; `gen
diff` and `anchor drift` from the files."""

from __future__ import annotations


def sq_norm(raw: bytes, dtype: str, chunk: int = 1 << 22) -> float:
    """Σw² in float64, a chunk at a time: memory stays a few chunks, whatever the tensor's size
    (a 123B model's embedding is 800 MB in bf16, 6.4 GB as one float64 array)."""
    import numpy as np

    kinds = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
    if dtype not in kinds:
        return 0.0
    a = np.frombuffer(raw, dtype=kinds[dtype])
    total = 0.0
    for start in range(0, len(a), chunk):
        part = a[start:start + chunk]
        if dtype == "BF16":
            part = (part.astype(np.uint32) << 16).view(np.float32)
        part = part.astype(np.float64)
        total += float(np.dot(part, part))
    return total


def module_type(name: str) -> str:
    for kind in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                 "embed_tokens", "lm_head"):
        if f".{kind}." in f".{name}" or name.startswith(kind):
            return kind
    return "other"


def drift_from_sums(sums: dict[str, list[float]]) -> dict:
    per = {k: (v[0] / v[1]) ** 0.5 if v[1] else 0.0 for k, v in sums.items()}
    num = sum(v[0] for v in sums.values())
    den = sum(v[1] for v in sums.values())
    return {"overall": (num / den) ** 0.5 if den else 0.0,
            "modules": {k: round(v, 8) for k, v in sorted(per.items())}}
