"""The light path: a BERT-family sentence encoder run on numpy alone.

A command that embeds a query should not pay torch's start-up (seconds) for a few
milliseconds of arithmetic. This reads the same safetensors weights and tokenizer.json as the
transformers path and computes the same function — embeddings, post-norm encoder layers with
exact (erf) GELU, mean/CLS pooling, L2 normalization — in float32, giving the same vectors
(cosine ≥ 0.9999; tests/func/test_embed.py holds it to that). For large batches torch is
faster (OpenBLAS vs oneDNN, about 1.5× here), so `Embedder` sends those to torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# What this encoder implements; any other model goes to torch.
_ARCHITECTURES = {"bert"}
_ACTIVATIONS = {"gelu"}
_WEIGHTS = "model.safetensors"
_TOKENIZER = "tokenizer.json"


def _one_blas_thread():
    """OpenBLAS on one thread while this encoder runs. Its threads spin while they wait: with
    several soulctl processes embedding at once (a server and shell commands, writers side by
    side) they took each other's cores — four writers of 250 lines took 36 s instead of 8 here.
    One thread costs a lone writer ~25% (2.7 → 3.5 s), and a query nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - shipped with scikit-learn, a dependency
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(1, user_api="blas")


def supports(model_dir: Path, modules: list[dict]) -> bool:
    """Whether `model_dir` is a model this encoder computes exactly: a BERT with absolute
    positions and GELU, a fast tokenizer, safetensors weights, plain pooling, no Dense head."""
    try:
        cfg = json.loads((model_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    kinds = {m.get("type", "").rsplit(".", 1)[-1] for m in modules}
    return (cfg.get("model_type") in _ARCHITECTURES
            and cfg.get("hidden_act") in _ACTIVATIONS
            and cfg.get("position_embedding_type", "absolute") == "absolute"
            and kinds <= {"Transformer", "Pooling", "Normalize"}
            and (model_dir / _TOKENIZER).is_file() and _numpy_weights(model_dir / _WEIGHTS))


def _numpy_weights(path: Path) -> bool:
    """Safetensors whose dtypes numpy reads as they are (bf16 is not one)."""
    try:
        header, _ = _header(path)
    except (OSError, ValueError):
        return False
    return all(entry.get("dtype") in _DTYPES for entry in header.values())


class NumpyEncoder:
    """Transformer → pooling → normalize, as `_TransformersEncoder` computes it, on numpy."""

    def __init__(self, model_dir: Path, max_len: int, lower: bool, mode: str):
        from tokenizers import Tokenizer

        cfg = json.loads((model_dir / "config.json").read_text())
        self.layers = int(cfg["num_hidden_layers"])
        self.heads = int(cfg["num_attention_heads"])
        self.eps = np.float32(cfg.get("layer_norm_eps", 1e-12))
        weights = map_safetensors(model_dir / _WEIGHTS)
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        self.w = {k[len(prefix):]: v.astype(np.float32, copy=False) for k, v in weights.items()
                  if k.startswith(prefix)}
        self.max_len = max_len
        self.lower = lower
        self.mode = mode
        self.tokenizer = Tokenizer.from_file(str(model_dir / _TOKENIZER))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_len)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        if self.lower:
            texts = [t.lower() for t in texts]
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def __call__(self, texts: list[str]) -> np.ndarray:
        ids = self.token_ids(texts)
        width = max(len(i) for i in ids)
        tokens = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.float32)
        for row, seq in enumerate(ids):
            tokens[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1.0
        with _one_blas_thread():
            hidden = self._encode(tokens, mask)
        if self.mode == "cls":
            pooled = hidden[:, 0]
        elif self.mode == "max":
            pooled = np.where(mask[..., None] > 0, hidden, np.float32(-1e9)).max(axis=1)
        else:
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)[:, None]
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)

    def _encode(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.w
        batch, width = tokens.shape
        x = (w["embeddings.word_embeddings.weight"][tokens]
             + w["embeddings.position_embeddings.weight"][:width]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        size = x.shape[-1]
        head = size // self.heads
        scale = np.float32(1.0 / np.sqrt(head))
        blocked = (1.0 - mask)[:, None, None, :] * np.finfo(np.float32).min  # padding gets no attention

        def split(t):
            return t.reshape(batch, width, self.heads, head).transpose(0, 2, 1, 3)

        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def linear(v, name):
                return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]  # BLAS reads it transposed

            q = split(linear(x, "attention.self.query"))
            k = split(linear(x, "attention.self.key"))
            v = split(linear(x, "attention.self.value"))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + blocked
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            attended = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, width, size)
            x = _layer_norm(linear(attended, "attention.output.dense") + x,
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self.eps)
            inner = _gelu(linear(x, "intermediate.dense"))
            x = _layer_norm(linear(inner, "output.dense") + x, w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], self.eps)
        return x


_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}


def _header(path: Path) -> tuple[dict, int]:
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    header.pop("__metadata__", None)
    return header, 8 + size


def map_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as read-only views of one memory map: no copy, and
    only the pages a query touches (a few rows of the word embeddings) are ever read."""
    import mmap

    header, base = _header(path)
    with open(path, "rb") as fh:
        data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    tensors = {}
    for name, entry in header.items():
        dtype = _DTYPES[entry["dtype"]]
        start, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize,
                                      offset=base + start).reshape(entry["shape"])
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: np.float32) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(np.square(centred), axis=-1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


_ERFC = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)


def _gelu(x: np.ndarray) -> np.ndarray:
    """x·Φ(x) with erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below float32's own)."""
    a = np.abs(x) * np.float32(1.0 / np.sqrt(2.0))
    t = np.float32(0.3275911) * a
    t += 1.0
    np.reciprocal(t, out=t)
    tail = np.float32(_ERFC[0]) * t
    for c in _ERFC[1:]:
        tail += np.float32(c)
        tail *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    tail *= a  # = 1 − erf(|x|/√2)
    tail *= np.float32(0.5)
    return np.where(x >= 0, x - x * tail, x * tail)
