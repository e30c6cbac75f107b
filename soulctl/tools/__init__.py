"""The soul's tools (DESIGN §7), above memory/, evolve/ and hands: the registry (registry.py)
and the modules that register tools (builtin.py holds the soul's own), each found and imported
when this package is, so a new tool is a function in builtin.py or a module here."""

import importlib
import pkgutil
from pathlib import Path

from soulctl.tools.registry import TOOLS, BadArguments, Tool, Toolbox, ToolContext, call, check_arguments, schemas

for _module in pkgutil.iter_modules([str(Path(__file__).parent)]):
    if _module.name != "registry":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TOOLS", "BadArguments", "Tool", "ToolContext", "Toolbox", "call", "check_arguments", "schemas"]
