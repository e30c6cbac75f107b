"""Inference backends behind one small interface (DESIGN §7): chat completion (optionally
streamed), token counting with the serving model's own tokenizer, and the context length.

- `llamacpp`: a GGUF in process through llama-cpp-python; a generation (HF safetensors) is
  converted once with llama.cpp's converter and cached as a recorded derivative (generations/derived.py);
- `transformers`: any HF directory on torch (cpu, cuda, mps);
- `mlx`: mlx-lm on Apple silicon (and on Linux CPU with `mlx[cpu]`);
- `openai`: any OpenAI-compatible URL (llama-server, llama_cpp.server, mlx_lm.server, LM Studio,
  Ollama, another machine).

`auto` picks the fastest backend this machine has for the model: a URL → openai, a GGUF →
llamacpp, Apple silicon with mlx-lm → mlx, llama-cpp-python (with a GGUF or the converter for
it) → llamacpp, else transformers.
"""

from soulctl.engine.base import Engine, ModelRef
from soulctl.engine.factory import (
                                    BACKENDS,
                                    backend_for,
                                    backend_module,
                                    choose_backend,
                                    open_engine,
                                    open_generation,
                                    prepare,
                                    prepares,
                                    resolve_model,
                                    served_generation,
)

__all__ = ["BACKENDS", "Engine", "ModelRef", "backend_for", "backend_module", "choose_backend", "open_engine",
           "open_generation", "prepare", "prepares", "resolve_model", "served_generation"]
