"""Weight drift between generations: per module type (q/k/v/o projections, MLP, embeddings)
and overall, as the relative distance ‖ΔW‖ / ‖W‖. Merge measures it while it streams; `gen
diff` and `anchor drift` from the files."""

from __future__ import annotations


def sq_norm(raw: bytes, dtype: str) -> float:
    import numpy as np

    if dtype == "F32":
        a = np.frombuffer(raw, dtype=np.float32)
    elif dtype == "F16":
        a = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
    elif dtype == "BF16":
        a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    else:
        return 0.0
    return float(np.dot(a.astype(np.float64), a.astype(np.float64)))


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
