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
    extra: dict = field(default_factory=dict)  # other keys, kept as written (lambda, mergekit_yaml)

    @classmethod
    def from_dict(cls, data: dict) -> "Lineage":
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
    return Lineage.from_dict({"id": gid, **data})
