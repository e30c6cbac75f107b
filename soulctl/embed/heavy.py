"""The torch path: transformers for the standard modules (skipping `import
sentence_transformers`, ~6 s here, for the same vectors), sentence-transformers for anything else.
Faster than the light path on large batches; seconds to start."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soulctl.errors import MissingDependency


class TransformersEncoder:
    """Transformer → mean/cls/max pooling → normalize, as sentence-transformers does it."""

    def __init__(self, model_dir: Path, device: str, reading):
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
        self.max_len, self.lower, self.mode = reading.max_len, reading.lower, reading.mode

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


class SentenceTransformersEncoder:
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
