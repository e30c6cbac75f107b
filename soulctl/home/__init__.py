"""Soul home discovery and paths (DESIGN §3).

A soul home is found like git finds .git: an explicit --home, else walking up from the
current directory to the first soul.yaml, else $SOUL_HOME.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from soulctl.errors import HomeNotFound

SOUL_YAML = "soul.yaml"
HOME_DIRS = ("recipes", "generations", "data", "corpora")


class Home:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    @property
    def soul_yaml(self) -> Path:
        return self.root / SOUL_YAML

    @property
    def generations(self) -> Path:
        return self.root / "generations"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def corpora(self) -> Path:
        return self.root / "corpora"

    @property
    def recipes(self) -> Path:
        return self.root / "recipes"

    @property
    def adapters(self) -> Path:
        return self.data / "adapters"

    @property
    def buffers(self) -> Path:
        return self.data / "buffers"

    @cached_property
    def config(self):
        from soulctl.home.config import load_config

        return load_config(self.soul_yaml)

    def owns(self, path: Path) -> bool:
        """Whether `path` is part of the home's own folders (soul.yaml, recipes, generations,
        data, corpora): never a place for a user's output file. The store may keep files
        elsewhere too; `Soul.owns` adds those."""
        real = Path(os.path.realpath(path))
        own = [self.generations, self.corpora, self.data, self.recipes]
        return (real == Path(os.path.realpath(self.soul_yaml))
                or any(real.is_relative_to(os.path.realpath(d)) for d in own))

    def resolve(self, path: str | Path) -> Path:
        """A path from soul.yaml: relative ones are relative to the home."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p

    def __repr__(self) -> str:
        return f"Home({str(self.root)!r})"


def is_home(path: Path) -> bool:
    return (Path(path) / SOUL_YAML).is_file()


def find_home(explicit: str | Path | None = None, start: Path | None = None) -> Home:
    if explicit:
        root = Path(explicit).expanduser()
        if not is_home(root):
            raise HomeNotFound(str(root))
        return Home(root)
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if is_home(candidate):
            return Home(candidate)
    env = os.environ.get("SOUL_HOME")
    if env and is_home(Path(env).expanduser()):
        return Home(Path(env).expanduser())
    raise HomeNotFound(str(here), env or None)
