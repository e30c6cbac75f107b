"""lineage.json: what a generation is made of (DESIGN §4) — parent, anchor, the ordered adapter
layers, the resolved recipe, tool versions, the source of generation 0, measured drift and the
sha256 manifest of every file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from soulctl.errors import InvalidInput, NotFound
from soulctl.home import Home

LINEAGE = "lineage.json"


@dataclass
class Lineage:
    id: str
    parent: str | None = None
    anchor: str | None = None  # None in generation 0, which is its own anchor
    created_at: str | None = None
    layers: list[dict] = field(default_factory=list)  # adapter, sha256, density, weight, …
    recipe: dict | None = None
    source: dict | None = None  # generation 0: the base model it was made from
    tools: dict = field(default_factory=dict)
    drift: dict | None = None
    manifest: dict[str, dict] = field(default_factory=dict)  # file → {sha256, bytes}
    manifest_sha256: str | None = None  # the manifest's own digest (integrity.py)
    parent_sha256: str | None = None  # the parent lineage's digest: the chain back to generation 0
    seal: str | None = None  # HMAC of the rest with the home's key (integrity.py)
    extra: dict = field(default_factory=dict)  # other keys, kept as written (lambda, mergekit_yaml)

    @classmethod
    def from_dict(cls, data: dict, where: str = LINEAGE) -> "Lineage":
        check_shape(data, where)
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names and v is not None}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    def as_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**data, **self.extra}

    @property
    def adapters(self) -> list[str]:
        """The adapter ids of its layers, in order."""
        return [layer["adapter"] for layer in self.layers]

    @property
    def hashes(self) -> dict[str, str]:
        """file → sha256, from the manifest."""
        return {name: entry["sha256"] for name, entry in self.manifest.items()}


# what each field must be: a lineage that is not (hand-edited, forged, truncated) is refused
# naming the field, never read into a crash further on
_SHAPES = {"id": str, "parent": (str, type(None)), "anchor": (str, type(None)), "created_at": (str, type(None)),
           "layers": list, "recipe": (dict, type(None)), "source": (dict, type(None)), "tools": (dict, type(None)),
           "drift": (dict, type(None)), "manifest": dict, "manifest_sha256": (str, type(None)),
           "parent_sha256": (str, type(None)), "seal": (str, type(None))}


def check_shape(data: dict, where: str) -> None:
    for key, kind in _SHAPES.items():
        if key in data and not isinstance(data[key], kind):
            raise InvalidInput(f"{where}: `{key}` is malformed ({type(data[key]).__name__})",
                               hint="a generation's lineage is written by soulctl only; `soulctl gen verify`")
    for i, layer in enumerate(data.get("layers") or []):
        if not isinstance(layer, dict) or not isinstance(layer.get("adapter"), str):
            raise InvalidInput(f"{where}: layer {i} is malformed (it needs an `adapter` id)",
                               hint="a generation's lineage is written by soulctl only; `soulctl gen verify`")
    for name, entry in (data.get("manifest") or {}).items():
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("bytes"), int)):
            raise InvalidInput(f"{where}: the manifest entry of {name} is malformed",
                               hint="a generation's lineage is written by soulctl only; `soulctl gen verify`")


def read_lineage(home: Home, gid: str) -> Lineage:
    path = home.generations / gid / LINEAGE
    if not path.is_file():
        raise NotFound(f"generation {gid} has no {LINEAGE}", hint="run `soulctl gen ls`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a JSON object")
    return Lineage.from_dict({**data, "id": gid}, str(path))
