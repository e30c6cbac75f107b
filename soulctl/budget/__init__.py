"""The RAM budget before launch (DESIGN §8): memory.py (the memory model: weights, KV cache,
compute buffers, stores, OS reserve, zones, --fit), plan.py (a budget from flags, a profile
and soul.yaml), modelfiles.py (safetensors and GGUF readers and the presets, which merge and
generation 0 read too)."""
