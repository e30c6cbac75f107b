"""The mlx backend: mlx-lm on Apple silicon (on Linux it runs on CPU with `mlx[cpu]`, slowly).

mlx-lm loads the generation's HF safetensors directly; no conversion.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from soulctl.engine.base import Engine
from soulctl.engine.sampling import GREEDY, Sampling
from soulctl.errors import InvalidInput


class MlxEngine(Engine):
    name = "mlx"
    supports_probs = True

    def __init__(self, model_dir: Path, context: int | None = None, generation: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import mlx_lm

        self.generation = generation
        self.model, self.tokenizer = mlx_lm.load(str(model_dir))
        if not getattr(self.tokenizer, "chat_template", None):
            raise InvalidInput(f"{model_dir} has no chat template", hint="use an instruct model")
        args = getattr(self.model, "args", None)
        trained = int(getattr(args, "max_position_embeddings", 0) or 0)
        self.context_length = min(context, trained) if context and trained else (context or trained or 2048)

    def prompt_tokens(self, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                                 tokenize=True)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)

    def stream(self, messages: list[dict], max_tokens: int = 256, sampling: Sampling | None = None) -> Iterator[str]:
        import mlx.core as mx
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        tokens = self.prompt_tokens(messages)
        if len(tokens) + max_tokens > self.context_length:
            raise InvalidInput(f"prompt of {len(tokens)} tokens + {max_tokens} to generate exceeds the "
                               f"context of {self.context_length}")
        s = (sampling or GREEDY).check(self.name)
        mx.random.seed(s.reply_seed())
        sampler = make_sampler(temp=s.temperature, top_p=s.top_p, min_p=s.min_p, top_k=s.top_k)
        processors = make_logits_processors(repetition_penalty=s.repeat_penalty)
        for response in stream_generate(self.model, self.tokenizer, tokens, max_tokens=max_tokens,
                                        sampler=sampler, logits_processors=processors):
            if response.text:
                yield response.text

    def chat(self, messages: list[dict], max_tokens: int = 256, sampling: Sampling | None = None) -> str:
        return "".join(self.stream(messages, max_tokens, sampling)).strip()

    def choice_probs(self, messages: list[dict], prefix: str, choices: list[str]) -> list[float]:
        import mlx.core as mx

        ids = []
        for choice in choices:
            encoded = self.tokenizer.encode(choice, add_special_tokens=False)
            if len(encoded) != 1:
                raise InvalidInput(f"choice {choice!r} is not one token for this model")
            ids.append(encoded[0])
        tokens = self.prompt_tokens(messages) + self.tokenizer.encode(prefix, add_special_tokens=False)
        logits = self.model(mx.array([tokens]))[0, -1]
        probs = mx.softmax(logits[mx.array(ids)].astype(mx.float32))
        return [float(p) for p in probs.tolist()]

    def close(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0

    def truncate(self, text: str, limit: int) -> str:
        return self.tokenizer.decode(self.tokenizer.encode(text, add_special_tokens=False)[:limit])

    def count_chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True) -> int:
        return len(self.prompt_tokens(messages, add_generation_prompt))


def open_backend(home, role: str, spec, ref, progress=None) -> MlxEngine:
    return MlxEngine(ref.path, context=spec.context, generation=ref.generation)
