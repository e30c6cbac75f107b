"""The transformers backend: any HF model directory on torch (cpu, cuda, mps)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

from soulctl.engine.base import Engine
from soulctl.engine.sampling import GREEDY, Sampling
from soulctl.errors import InvalidInput


class TransformersEngine(Engine):
    name = "transformers"
    supports_probs = True
    supports_weights = True

    def __init__(self, model_dir: Path, context: int | None = None, device: str | None = None,
                 generation: str | None = None):
        self.generation = generation
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if not self.tokenizer.chat_template:
            raise InvalidInput(f"{model_dir} has no chat template", hint="use an instruct model")
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir)).to(self.device).eval()
        trained = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        self.context_length = min(context, trained) if context and trained else (context or trained or 2048)

    def _inputs(self, messages: list[dict]):
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                 return_tensors="pt", return_dict=True)
        return {k: v.to(self.device) for k, v in ids.items()}

    def _generate_kwargs(self, inputs, max_tokens: int, sampling: Sampling | None) -> dict:
        prompt = inputs["input_ids"].shape[1]
        if prompt + max_tokens > self.context_length:
            raise InvalidInput(f"prompt of {prompt} tokens + {max_tokens} to generate exceeds the "
                               f"context of {self.context_length}")
        s = (sampling or GREEDY).check(self.name)
        kwargs = dict(**inputs, max_new_tokens=max_tokens, pad_token_id=self.tokenizer.eos_token_id,
                      repetition_penalty=s.repeat_penalty)
        if s.temperature > 0:
            self.torch.manual_seed(s.reply_seed())
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k or None,
                          min_p=s.min_p or None)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def chat(self, messages: list[dict], max_tokens: int = 256, sampling: Sampling | None = None) -> str:
        inputs = self._inputs(messages)
        with self.torch.inference_mode():
            out = self.model.generate(**self._generate_kwargs(inputs, max_tokens, sampling))
        return self.tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def stream(self, messages: list[dict], max_tokens: int = 256, sampling: Sampling | None = None) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        inputs = self._inputs(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self._generate_kwargs(inputs, max_tokens, sampling)
        thread = threading.Thread(target=lambda: self._generate_into(kwargs, streamer), daemon=True)
        thread.start()
        yield from streamer
        thread.join()

    def _generate_into(self, kwargs, streamer) -> None:
        with self.torch.inference_mode():
            self.model.generate(**kwargs, streamer=streamer)

    def choice_probs(self, messages: list[dict], prefix: str, choices: list[str]) -> list[float]:
        """Probabilities of each single-token choice right after the reply starts with
        `prefix` (renormalized over the choices): a judge that works even for small models."""
        inputs = self._inputs(messages)
        extra = self.tokenizer(prefix, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.device)
        ids = self.torch.cat([inputs["input_ids"], extra], dim=1)
        token_ids = []
        for choice in choices:
            encoded = self.tokenizer(choice, add_special_tokens=False)["input_ids"]
            if len(encoded) != 1:
                raise InvalidInput(f"choice {choice!r} is not one token for this model")
            token_ids.append(encoded[0])
        with self.torch.inference_mode():
            logits = self.model(input_ids=ids).logits[0, -1].float()
        probs = self.torch.softmax(logits[token_ids], dim=0)
        return [float(p) for p in probs]

    def truncate(self, text: str, limit: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][:limit]
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def torch_model(self):
        return self.model, self.tokenizer

    def close(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True) -> int:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                                 tokenize=True)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)


def open_backend(home, role: str, spec, ref, progress=None) -> TransformersEngine:
    return TransformersEngine(ref.path, context=spec.context, generation=ref.generation)
