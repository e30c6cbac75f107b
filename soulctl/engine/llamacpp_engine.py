"""The llamacpp backend: a GGUF in process through llama-cpp-python.

The prompt is rendered with the GGUF's own chat template and tokenized here; the very token
list that was counted is what gets evaluated, so the Memory OS's count is exact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from soulctl.engine.base import Engine
from soulctl.engine.sampling import GREEDY, Sampling
from soulctl.errors import InvalidInput, Unavailable


class LlamaCppEngine(Engine):
    name = "llamacpp"
    supports_probs = True

    def __init__(self, gguf: Path, context: int | None = None, generation: str | None = None,
                 threads: int | None = None):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.generation = generation
        self.path = Path(gguf)
        self.context_length = context or 0  # 0: the trained context
        self.llm = self._load(llama_cpp, threads)
        trained = self.llm._model.n_ctx_train()
        if not self.context_length or self.context_length > trained:  # never past what it was trained on
            self.context_length = trained
            self.llm = self._load(llama_cpp, threads)
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise InvalidInput(f"{self.path} has no chat template", hint="use an instruct model")
        bos = self.llm.token_bos()
        self.eos_text = self._piece(self.llm.token_eos())
        tokens = dict(eos_token=self.eos_text, bos_token=self._piece(bos) if bos >= 0 else "")
        self.formatter = Jinja2ChatFormatter(template, **tokens)
        self.formatter_open = Jinja2ChatFormatter(template, **tokens, add_generation_prompt=False)

    def _load(self, llama_cpp, threads: int | None):
        try:
            return llama_cpp.Llama(str(self.path), n_ctx=self.context_length, verbose=False,
                                   n_threads=threads or os.cpu_count() or 1)
        except ValueError as exc:  # llama-cpp-python reports load failures as ValueError
            raise Unavailable(f"llama.cpp could not load {self.path}: {exc}",
                              hint="check the file, or free memory (soulctl budget)") from None

    def _piece(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode("utf-8", "replace")

    def prompt_tokens(self, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
        formatter = self.formatter if add_generation_prompt else self.formatter_open
        prompt = formatter(messages=messages).prompt
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def _completion(self, messages: list[dict], max_tokens: int, sampling: Sampling | None, stream: bool):
        tokens = self.prompt_tokens(messages)
        if len(tokens) + max_tokens > self.context_length:
            raise InvalidInput(f"prompt of {len(tokens)} tokens + {max_tokens} to generate exceeds the "
                               f"context of {self.context_length}")
        # no reset(): llama-cpp-python keeps the KV cache of the longest prefix shared with the
        # last prompt, so the self-definition and notebook (first in every prompt) are not re-read
        s = sampling or GREEDY
        grammar = None
        if s.json is not None:  # JSON by grammar: any JSON value for {}, else the schema's shape
            import json

            from llama_cpp import LlamaGrammar
            from llama_cpp.llama_grammar import JSON_GBNF

            from soulctl.engine.schema import check_json_schema

            try:
                grammar = (LlamaGrammar.from_json_schema(json.dumps(check_json_schema(s.json)), verbose=False)
                           if s.json else LlamaGrammar.from_string(JSON_GBNF, verbose=False))
            except (ValueError, KeyError, TypeError, RecursionError, RuntimeError) as exc:
                raise InvalidInput(f"the JSON schema cannot be turned into a grammar ({str(exc)[:200]})",
                                   hint="simplify the schema") from None
        return self.llm.create_completion(
            tokens, max_tokens=max_tokens, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
            min_p=s.min_p, repeat_penalty=s.repeat_penalty, frequency_penalty=s.frequency_penalty,
            presence_penalty=s.presence_penalty, stop=[self.eos_text], stream=stream, seed=s.reply_seed(), grammar=grammar)

    def chat(self, messages: list[dict], max_tokens: int = 256, sampling: Sampling | None = None) -> str:
        return self._completion(messages, max_tokens, sampling, False)["choices"][0]["text"].strip()

    def stream(self, messages: list[dict], max_tokens: int = 256, sampling: Sampling | None = None) -> Iterator[str]:
        for chunk in self._completion(messages, max_tokens, sampling, True):
            piece = chunk["choices"][0]["text"]
            if piece:
                yield piece

    def choice_probs(self, messages: list[dict], prefix: str, choices: list[str]) -> list[float]:
        """Probabilities of each single-token choice right after the reply starts with
        `prefix`, renormalized over the choices (the judge of `resonate score --judge`)."""
        import numpy as np

        ids = []
        for choice in choices:
            encoded = self.llm.tokenize(choice.encode(), add_bos=False, special=False)
            if len(encoded) != 1:
                raise InvalidInput(f"choice {choice!r} is not one token for this model")
            ids.append(encoded[0])
        tokens = self.prompt_tokens(messages) + self.llm.tokenize(prefix.encode(), add_bos=False)
        self.llm.reset()
        self.llm.eval(tokens)
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(-1), shape=(self.llm.n_vocab(),))
        chosen = logits[ids].astype(np.float64)
        probs = np.exp(chosen - chosen.max())
        return [float(p) for p in probs / probs.sum()]

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0

    def truncate(self, text: str, limit: int) -> str:
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)[:limit]
        return self.llm.detokenize(ids).decode("utf-8", "ignore")

    def close(self) -> None:
        """Free the model now: llama.cpp freed during interpreter shutdown can abort."""
        self.llm.close()

    def count_chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True) -> int:
        return len(self.prompt_tokens(messages, add_generation_prompt))


def prepare(home, spec, ref, progress=None):
    """The GGUF llama.cpp reads for `ref`: converted once from a generation and cached beside it."""
    from soulctl.generations.derived import gguf_for

    return gguf_for(home, ref, spec.quant, progress)


def open_backend(home, role: str, spec, ref, progress=None) -> LlamaCppEngine:
    return LlamaCppEngine(prepare(home, spec, ref, progress), context=spec.context, generation=ref.generation)
