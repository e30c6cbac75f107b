"""The soul's tools (DESIGN §7), above memory/, evolve/ and hands: the registry (registry.py)
and the soul's own tools (builtin.py), registered when this package is imported."""

import soulctl.tools.builtin  # noqa: F401  (registers the soul's tools)
from soulctl.tools.registry import TOOLS, BadArguments, Tool, Toolbox, ToolContext, call, check_arguments, schemas

__all__ = ["TOOLS", "BadArguments", "Tool", "ToolContext", "Toolbox", "call", "check_arguments", "schemas"]
