"""Trainers (DESIGN §6): each a module (peft_lora.py, mlx_lora.py) over one protocol (base.py),
found by name in registry.py from recipes/dream.yaml's `trainer`."""

from soulctl.evolve.trainers.registry import known, pick, trainer

__all__ = ["known", "pick", "trainer"]
