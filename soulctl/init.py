"""`soulctl init`: a new soul home with generation 0, the golden anchor (DESIGN §3), and its
log. It sits above home/, generations/ and log/, which it puts together.

Everything is checked before anything is written; what is written is undone on failure,
and soul.yaml (the mark of a home) is written last, atomically.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from soulctl import __version__
from soulctl.embed import bundled_model_dir, describe
from soulctl.errors import AlreadyExists, InvalidInput
from soulctl.generations import build_generation, gen_id, make_writable, now_iso, set_current
from soulctl.generations.base import materialize, resolve_base
from soulctl.home import HOME_DIRS, SOUL_YAML, Home, is_home
from soulctl.home.config import DEFAULT_SOUL_YAML, parse_config
from soulctl.home.recipes import copy_recipes
from soulctl.log import open_store, store_files


def create_home(directory: Path, base: str | None = None, dtype: str = "float32",
                store: str | None = None, progress=None) -> dict:
    root = Path(directory).expanduser().resolve()
    if is_home(root):
        raise AlreadyExists(f"{root} is already a soul home (it has {SOUL_YAML}); nothing changed",
                            hint="use it as it is, or init another directory")
    if root.exists() and not root.is_dir():
        raise InvalidInput(f"{root} exists and is not a directory")
    source = resolve_base(base)  # validates before the first write

    created: list[Path] = []  # undone in reverse on failure
    try:
        if not root.exists():
            root.mkdir(parents=True)
            created.append(root)
        for name in HOME_DIRS:
            path = root / name
            if not path.exists():
                path.mkdir()
                created.append(path)
        home = Home(root)
        recipes = copy_recipes(home.recipes)
        created += [home.recipes / name for name in recipes]

        gid = gen_id(0)
        lineage = {
            "parent": None,
            "anchor": gid,
            "created_at": now_iso(),
            "layers": [],
            "recipe": None,
            "mergekit_yaml": None,
            "source": None,
            "tools": {"soulctl": __version__},
            "drift": {"overall": 0.0},
        }

        def write(tmp: Path) -> None:
            record = materialize(source, tmp, dtype, progress)
            lineage["tools"].update(record.pop("tools", None) or {})
            lineage["source"] = record

        gen_dir = build_generation(home, gid, write, lineage, progress)
        created.append(gen_dir)
        set_current(home, gid)
        created.append(home.generations / "current")

        # The log, made for the default embedder's vectors (without loading it).
        default = parse_config(DEFAULT_SOUL_YAML).store
        url = store or default
        created += store_files(home, url)
        info = describe(bundled_model_dir())
        log_store = open_store(home, url)
        try:
            log_store.create(info.model_id, info.dim)
        finally:
            log_store.close()

        tmp_yaml = root / f".{SOUL_YAML}.tmp"
        tmp_yaml.write_text(DEFAULT_SOUL_YAML.replace(f"store: {default}\n", f"store: {url}\n"))
        tmp_yaml.replace(root / SOUL_YAML)
    except BaseException:
        for path in reversed(created):
            _remove(path)
        (root / f".{SOUL_YAML}.tmp").unlink(missing_ok=True)
        raise
    return {"home": str(root), "generation": gid, "base": source.describe(),
            "recipes": recipes, "dtype": dtype}


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        make_writable(path)
        shutil.rmtree(path, ignore_errors=True)
