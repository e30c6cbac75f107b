"""Soul(home): the one handle that commands and servers hold (dvc's Repo is the model).

It opens what is asked of it, once, and only when asked: the log store, the embedder, an
engine per role, recipes with their overrides merged and validated in one place. Nothing
heavy is imported until a property is used, so `soulctl log ls` never loads torch.
"""

from __future__ import annotations

from functools import cached_property

from soulctl.home import Home


class Soul:
    def __init__(self, home: Home):
        self.home = home
        self._engines: dict[str, object] = {}

    @property
    def config(self):
        return self.home.config

    @cached_property
    def store(self):
        """The bifocal log, behind the Store interface (the backend soul.yaml names). A home
        whose data/ is gone is refused, never given a new empty log in its place."""
        from soulctl.errors import NotFound
        from soulctl.log import open_store

        if not self.home.data.is_dir():
            raise NotFound(f"{self.home.data} is missing: this home's log, notebook and adapters live there",
                           hint="restore it from a backup, or make a new home with `soulctl init DIR`")
        return open_store(self.home)

    @cached_property
    def embedder(self):
        from soulctl.embed import embedder_for

        return embedder_for(self.config, self.home.root)

    def engine(self, role: str = "soul", progress=None):
        """The engine serving `role`, opened once; closed by close()."""
        if role not in self._engines:
            from soulctl.engine import open_engine

            self._engines[role] = open_engine(self.home, role, progress=progress)
        return self._engines[role]

    def resident_files(self) -> list:
        """What the soul keeps on disk beside its models, for the budget: its store's files on
        this machine (named without opening it) and its corpus indexes."""
        from soulctl.log import store_files

        return [*store_files(self.home), self.home.corpora]

    def owns(self, path) -> bool:
        """Whether `path` is a soul's own state — this home's folders, the files its store keeps
        wherever they are, or another home's state — which no user output may write over.
        Compared by device and inode (a bind mount of the home is still the home)."""
        from soulctl.home import home_of, within
        from soulctl.log import store_files

        return self.home.owns(path) or within(path, store_files(self.home)) or home_of(path) is not None

    def put_engine(self, role: str, engine) -> None:
        """Serve `role` from `engine` from now on (a server that follows `current`)."""
        self._engines[role] = engine

    def drop_engine(self, role: str):
        """Forget `role`'s engine without closing it (the caller does); None when none is open."""
        return self._engines.pop(role, None)

    def recipe(self, name: str, overrides: dict | None = None):
        """recipes/NAME.yaml merged with `overrides` (nested keys as dicts; None values are
        left out, so unset flags keep the file's value), validated once: flag → file → default."""
        from soulctl.home.recipe_schemas import load_recipe_with

        return load_recipe_with(self.home, name, overrides or {})

    def close(self) -> None:
        """Finish background writes and close the engines (a llama.cpp model freed at
        interpreter exit aborts the process, so they are closed explicitly)."""
        if "store" in self.__dict__:
            self.store.settle()
            self.store.close()
        engines, self._engines = self._engines, {}
        for engine in engines.values():
            engine.close()

    def __enter__(self) -> "Soul":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
