"""GGUF files for the llamacpp backend.

A generation is HF safetensors; llama.cpp reads GGUF. The first time a generation is served on
llama.cpp it is converted once with llama.cpp's own converter (`convert_hf_to_gguf.py`, which
scripts/install unpacks from the llama-cpp-python source release into the environment) and the
result is cached outside the immutable directory, in `generations/.derived/<id>/`, with a
`derived.json` that records what it was made from (the generation's weight hashes), by what
converter, at what precision, and its own sha256. Generation 0 built from a bundled GGUF needs
no conversion: its weights are that file's, dequantized, so the file itself is served (checked
against the sha256 in the lineage once).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from soulctl.errors import InvalidInput, MissingDependency
from soulctl.generations.lineage import LINEAGE, Lineage
from soulctl.home import Home
from soulctl.progress import progress_task

DERIVED = ".derived"
OUTTYPES = ("f32", "f16", "bf16", "q8_0")
DEFAULT_OUTTYPE = "f16"
CONVERTER_ENV = "SOULCTL_LLAMA_CPP"


def converter_dir() -> Path | None:
    """Where llama.cpp's convert_hf_to_gguf.py lives: $SOULCTL_LLAMA_CPP, else the copy
    scripts/install unpacked into this environment."""
    candidates = [Path(os.environ[CONVERTER_ENV])] if os.environ.get(CONVERTER_ENV) else []
    candidates.append(Path(sys.prefix) / "share" / "soulctl" / "llama.cpp")
    for candidate in candidates:
        if (candidate / "convert_hf_to_gguf.py").is_file():
            return candidate
    return None


def _source_gguf(generation_dir: Path) -> dict | None:
    """The GGUF a generation 0 was dequantized from, when it still exists."""
    try:
        lineage = Lineage.from_dict(json.loads((generation_dir / LINEAGE).read_text()))
    except (OSError, ValueError, TypeError, InvalidInput):
        return None
    source = lineage.source or {}
    if lineage.parent or lineage.layers or source.get("kind") != "gguf":
        return None
    path = Path(source.get("path") or "")
    return source if path.is_file() else None


def can_serve_gguf(ref) -> bool:
    """Whether llama.cpp can serve `ref` without more installing: a GGUF, a generation 0 with
    its source GGUF, or anything once llama.cpp's converter is here."""
    if ref.kind == "gguf":
        return True
    if ref.kind == "generation" and _source_gguf(ref.path):
        return True
    return converter_dir() is not None


def _derived_dir_for(ref, home: Home) -> Path:
    if ref.kind == "generation":
        return ref.path.parent / DERIVED / ref.generation
    key = hashlib.sha256(str(ref.path).encode())
    for f in sorted(ref.path.glob("*")):
        if f.is_file():
            st = f.stat()
            key.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return home.data / "gguf" / f"{ref.path.name}-{key.hexdigest()[:12]}"


def _cached(directory: Path, outtype: str) -> Path | None:
    """The derivative recorded in `directory`, if it is still there, unchanged, and (for a
    conversion) at the precision asked for."""
    try:
        record = json.loads((directory / "derived.json").read_text())
    except (OSError, ValueError):
        return None
    if record.get("kind") == "conversion" and record.get("outtype") != outtype:
        return None
    path = Path(record["path"]) if record.get("kind") == "source" else directory / record["file"]
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_size != record["bytes"] or (record.get("kind") == "source" and st.st_mtime_ns != record["mtime_ns"]):
        return None
    return path


@contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def gguf_for(home: Home, ref, quant: str | None = None, progress=None) -> Path:
    """A GGUF holding `ref`'s weights: the file itself, the bundled source of a generation 0,
    or a cached conversion (made now if missing)."""
    if ref.kind == "gguf":
        return ref.path
    outtype = (quant or DEFAULT_OUTTYPE).lower()
    if outtype not in OUTTYPES:
        outtype = DEFAULT_OUTTYPE  # a budget quant (q4_k_m…) is not a conversion target
    directory = _derived_dir_for(ref, home)
    if (hit := _cached(directory, outtype)) is not None:
        return hit
    with _locked(directory):  # one conversion at a time; a second caller finds the result
        if (hit := _cached(directory, outtype)) is not None:
            return hit
        source = _source_gguf(ref.path) if ref.kind == "generation" else None
        if source and _sha256(Path(source["path"])) == source.get("sha256"):
            st = Path(source["path"]).stat()
            _write_record(directory, {"kind": "source", "generation": ref.generation,
                                      "path": source["path"], "bytes": st.st_size,
                                      "mtime_ns": st.st_mtime_ns, "sha256": source["sha256"],
                                      "note": "generation 0's weights are this file's, dequantized"})
            return Path(source["path"])
        return _convert(ref, directory, outtype, progress)


def _convert(ref, directory: Path, outtype: str, progress) -> Path:
    conv = converter_dir()
    if conv is None:
        error = MissingDependency("llama.cpp's convert_hf_to_gguf.py",
                                  why=f"needed to serve {ref.name} on llama.cpp")
        error.hint = (f"run `sh scripts/install` (it unpacks the converter), set {CONVERTER_ENV} "
                      "to a llama.cpp checkout, or use backend: transformers")
        raise error
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{ref.name}.{outtype}.gguf"
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    env = dict(os.environ, HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(conv / "gguf-py"), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, str(conv / "convert_hf_to_gguf.py"), str(ref.path),
           "--outfile", str(tmp), "--outtype", outtype]
    try:
        with progress_task(progress, f"converting {ref.name} to GGUF ({outtype}) for llama.cpp"):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            last = next((ln for ln in reversed(done.stderr.splitlines()) if ln.strip()), "no output")
            raise InvalidInput(f"llama.cpp's converter could not convert {ref.path}: {last.strip()}",
                               hint="use backend: transformers for this model")
        digest = _sha256(tmp)
        os.replace(tmp, directory / name)
    finally:
        tmp.unlink(missing_ok=True)
    weights = {}
    if ref.kind == "generation":
        manifest = Lineage.from_dict(json.loads((ref.path / LINEAGE).read_text())).manifest
        weights = {k: v["sha256"] for k, v in manifest.items() if k.endswith(".safetensors")}
    _write_record(directory, {"kind": "conversion", "generation": ref.generation, "from": str(ref.path),
                              "weights": weights, "file": name, "outtype": outtype,
                              "bytes": (directory / name).stat().st_size, "sha256": digest,
                              "converter": _converter_version(conv)})
    return directory / name


def _converter_version(conv: Path) -> str:
    stamp = conv / "VERSION"
    return stamp.read_text().strip() if stamp.is_file() else str(conv)


def _write_record(directory: Path, record: dict) -> None:
    from soulctl.generations.refs import now_iso

    record["created_at"] = now_iso()
    tmp = directory / "derived.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, directory / "derived.json")


def _sha256(path: Path) -> str:
    from soulctl.generations.files import sha256_file

    return sha256_file(path)
