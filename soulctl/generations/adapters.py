"""LoRA adapters in PEFT format under data/adapters/<id>/, content-addressed: the id is the
sha256 of the adapter's config and weights, so one id always means the same bytes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from soulctl.errors import InvalidInput, NotFound
from soulctl.home import Home

CONTENT_FILES = ("adapter_config.json", "adapter_model.safetensors")
META = "meta.json"


def content_sha(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in CONTENT_FILES:
        path = directory / name
        if not path.is_file():
            raise InvalidInput(f"{directory} is not a PEFT adapter: {name} is missing")
        digest.update(name.encode() + b"\0")
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def store_adapter(home: Home, staged: Path, meta: dict) -> str:
    """Move a freshly written adapter into data/adapters/<id>/ (id from its content)."""
    sha = content_sha(staged)
    adapter_id = "ad-" + sha[:16]
    target = home.adapters / adapter_id
    if target.exists():
        if content_sha(target) != sha:  # pragma: no cover - a sha256 collision or tampering
            raise InvalidInput(f"{target} exists with other content", hint="run `soulctl gen verify`")
        shutil.rmtree(staged)
        return adapter_id
    (staged / META).write_text(json.dumps({**meta, "id": adapter_id, "sha256": sha}, indent=1) + "\n")
    home.adapters.mkdir(parents=True, exist_ok=True)
    for path in staged.iterdir():
        os.chmod(path, stat.S_IMODE(path.stat().st_mode) & ~0o222)  # read-only; private by the umask
    os.rename(staged, target)
    return adapter_id


def resolve_adapter(home: Home, ref: str) -> Path:
    path = Path(ref).expanduser()
    if (path / "adapter_config.json").is_file() and path.resolve().parent == home.adapters.resolve():
        return path
    if home.adapters.is_dir():
        if (home.adapters / ref).is_dir():
            return home.adapters / ref
        matches = [p for p in home.adapters.iterdir() if p.name.startswith(ref) or p.name == f"ad-{ref}"]
        if len(matches) == 1:
            return matches[0]
    known = ", ".join(sorted(p.name for p in home.adapters.iterdir())) if home.adapters.is_dir() else "none"
    raise NotFound(f"no adapter {ref!r}", hint=f"adapters: {known}; `soulctl dream --import DIR` adds one")


@dataclass
class AdapterLayer:
    id: str
    directory: Path
    sha256: str
    scale: float
    meta: dict
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    _keys: dict[str, tuple[str, str]] = field(default_factory=dict)

    def delta(self, target: str):
        """ΔW = scale · B · A for the anchor tensor `target`, float32."""
        from safetensors import safe_open

        a_key, b_key = self._keys[target]
        with safe_open(str(self.directory / "adapter_model.safetensors"), framework="pt") as st:
            a, b = st.get_tensor(a_key).float(), st.get_tensor(b_key).float()
        return (b @ a) * self.scale


def load_adapter(home: Home, ref: str, expect_sha: str | None = None) -> AdapterLayer:
    directory = resolve_adapter(home, ref)
    sha = content_sha(directory)
    if expect_sha and sha != expect_sha:
        raise InvalidInput(f"adapter {directory.name} does not match its recorded hash",
                           hint="adapters are immutable: restore it, or import it again")
    try:
        config = json.loads((directory / "adapter_config.json").read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{directory}/adapter_config.json: invalid JSON ({exc.msg})") from None
    r = int(config.get("r", 0) or 0)
    alpha = float(config.get("lora_alpha", r) or r)
    if r <= 0:
        raise InvalidInput(f"adapter {directory.name}: r must be positive")
    scale = alpha / (r ** 0.5) if config.get("use_rslora") else alpha / r
    meta_path = directory / META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    layer = AdapterLayer(directory.name, directory, sha, scale, meta)
    _index_tensors(layer)
    return layer


def _index_tensors(layer: AdapterLayer) -> None:
    import torch
    from safetensors import SafetensorError, safe_open

    path = layer.directory / "adapter_model.safetensors"
    try:
        with safe_open(str(path), framework="pt") as st:
            keys = list(st.keys())
            pairs: dict[str, dict[str, str]] = {}
            for key in keys:
                for part in ("lora_A", "lora_B"):
                    marker = f".{part}."
                    if marker in key:
                        module = key.split(marker)[0]
                        module = module.removeprefix("base_model.model.")
                        pairs.setdefault(module + ".weight", {})[part] = key
            for target, pair in pairs.items():
                if set(pair) != {"lora_A", "lora_B"}:
                    raise InvalidInput(f"adapter {layer.id}: {target} lacks lora_A or lora_B")
                a, b = st.get_slice(pair["lora_A"]), st.get_slice(pair["lora_B"])
                a_shape, b_shape = tuple(a.get_shape()), tuple(b.get_shape())
                if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != b_shape[1]:
                    raise InvalidInput(f"adapter {layer.id}: {target} has LoRA shapes {a_shape} × {b_shape}")
                for key in pair.values():
                    if not torch.isfinite(st.get_tensor(key)).all():
                        raise InvalidInput(f"adapter {layer.id}: {key} holds NaN or Inf")
                layer.shapes[target] = (a_shape, b_shape)
                layer._keys[target] = (pair["lora_A"], pair["lora_B"])
    except SafetensorError as exc:
        raise InvalidInput(f"adapter {layer.id}: corrupt safetensors file ({exc})",
                           hint="re-import or re-train the adapter") from None
    if not layer.shapes:
        raise InvalidInput(f"adapter {layer.id} holds no LoRA tensors")
