"""Evolution: resonate → dream → merge → anchor (DESIGN §6)."""
