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
        data, corpora): never a place for a user's output file. Files are compared as files
        (device and inode), not as names, so another spelling — a bind mount, a hard link —
        is caught too. The store may keep files elsewhere; `Soul.owns` adds those."""
        return within(path, [self.soul_yaml, self.generations, self.corpora, self.data, self.recipes])

    def resolve(self, path: str | Path) -> Path:
        """A path from soul.yaml: relative ones are relative to the home."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p

    def __repr__(self) -> str:
        return f"Home({str(self.root)!r})"


def _identity(path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def within(path, protected) -> bool:
    """Whether `path` (existing or not) is one of the `protected` files or folders, or lies
    inside one of the folders: by device and inode of the path and each folder above it."""
    ids = {i for i in map(_identity, protected) if i is not None}
    here = Path(os.path.abspath(os.path.expanduser(path)))
    for candidate in (here, *here.parents):
        if _identity(candidate) in ids:
            return True
    real = Path(os.path.realpath(here))  # a link whose target does not exist yet
    return real != here and any(_identity(c) in ids for c in (real, *real.parents))


def home_of(path) -> "Home | None":
    """The soul home whose own state `path` is part of (this one or any other), if any."""
    here = Path(os.path.realpath(os.path.abspath(os.path.expanduser(path))))
    for folder in here.parents:
        if is_home(folder):
            candidate = Home(folder)
            if candidate.owns(here):
                return candidate
    return None


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
