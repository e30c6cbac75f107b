"""soulctl: a git-like toolchain for a self-evolving local LLM.

Kept import-free on purpose: `soulctl --help` must start in a fraction of a second.
"""

__version__ = "0.1.0"
