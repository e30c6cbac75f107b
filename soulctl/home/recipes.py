"""The recipes a soul home starts with (recipes/*.yaml, probes.txt, self.md), shipped inside
the package and copied into each home at init, where the user may edit them."""

from __future__ import annotations

import shutil
from pathlib import Path

from soulctl.errors import NotFound


def shipped_recipes() -> Path:
    package = Path(__file__).resolve().parent.parent  # soulctl/
    for candidate in (package / "recipes", package.parent / "recipes"):  # wheel, then checkout
        if candidate.is_dir():
            return candidate
    raise NotFound("the shipped recipes are missing from the installation",
                   hint="reinstall soulctl")


def recipe_file(home, name: str) -> Path | None:
    """The home's own copy of a recipe file, else the shipped one; None when neither exists."""
    for path in ([home.recipes / name] if home is not None else []) + [shipped_recipes() / name]:
        if path.is_file():
            return path
    return None


def copy_recipes(dest: Path) -> list[str]:
    """Copy the shipped recipes that the destination does not have yet; return their names."""
    src = shipped_recipes()
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(src.iterdir()):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".txt", ".jsonl") \
                and not (dest / path.name).exists():
            shutil.copyfile(path, dest / path.name)
            copied.append(path.name)
    return copied
