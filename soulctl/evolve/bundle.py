"""Encrypted bundles for training on a remote GPU (DESIGN §11).

export: the buffer, the resolved dream recipe and a reference to the base generation (its
manifest hashes) → AES-256-GCM (authenticated) → one file. run: on the GPU machine, with a
copy of that generation's directory, train and write the adapter back as another bundle.
import: decrypt, check the base, and store the adapter content-addressed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from soulctl.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from soulctl.soul import Soul

MAGIC = b"SOULCTL-BUNDLE\x01"
KEY_ENV = "SOULCTL_BUNDLE_KEY"


def load_key(key_file: str | None) -> bytes:
    """32 bytes: raw, hex or base64, from a file or $SOULCTL_BUNDLE_KEY."""
    if key_file:
        try:
            raw = Path(key_file).expanduser().read_bytes()
        except OSError as exc:
            raise NotFound(f"cannot read key file {key_file}: {exc.strerror}") from None
    elif os.environ.get(KEY_ENV):
        raw = os.environ[KEY_ENV].encode()
    else:
        raise InvalidInput("no bundle key", hint=f"pass --key-file FILE or set {KEY_ENV}; make one "
                           "with: head -c 32 /dev/urandom > soul.key")
    if len(raw) == 32:
        return raw
    text = raw.strip()
    for decode in (lambda t: bytes.fromhex(t.decode()), lambda t: base64.b64decode(t, validate=True)):
        try:
            key = decode(text)
        except ValueError:  # also binascii.Error and UnicodeDecodeError
            continue
        if len(key) == 32:
            return key
    raise InvalidInput("the bundle key must be 32 bytes (raw, hex or base64)")


def _seal(files: dict[str, bytes], key: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    nonce = os.urandom(12)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, buf.getvalue(), MAGIC)


def _open(path: Path, key: bytes) -> dict[str, bytes]:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not Path(path).is_file():
        raise NotFound(f"no bundle {path}", hint="check the path")
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise InvalidInput(f"{path} is not a soulctl bundle")
    nonce, body = data[len(MAGIC):len(MAGIC) + 12], data[len(MAGIC) + 12:]
    try:
        plain = AESGCM(key).decrypt(nonce, body, MAGIC)
    except InvalidTag:
        raise InvalidInput(f"{path}: wrong key or tampered bundle (authentication failed)") from None
    out = {}
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and "/" not in member.name and not member.name.startswith("."):
                out[member.name] = tar.extractfile(member).read()
    return out


def _write(path: Path, blob: bytes, force: bool, owner=None) -> None:
    from soulctl.outfile import output_path

    with output_path(path, force, owner) as tmp:
        tmp.write_bytes(blob)


def export_bundle(soul: Soul, buffer_ref: str | None, recipe, key: bytes, out: Path, force: bool = False) -> dict:
    from soulctl.evolve.dream import resolve_buffer
    from soulctl.evolve.training import read_buffer
    from soulctl.generations import current, read_lineage
    from soulctl.outfile import check_output

    home = soul.home
    check_output(out, force, soul)  # before anything is read
    buffer = resolve_buffer(home, buffer_ref)
    read_buffer(buffer)  # refuse an empty or malformed buffer here, not on the GPU
    gen = current(home)
    lineage = read_lineage(home, gen)
    base = {"generation": gen, "manifest": lineage.hashes}
    files = {"buffer.jsonl": buffer.read_bytes(), "recipe.json": json.dumps(recipe.model_dump()).encode(),
             "base.json": json.dumps(base).encode()}
    meta = buffer.with_suffix(".json")
    if meta.is_file():
        files["buffer.json"] = meta.read_bytes()
    _write(out, _seal(files, key), force, soul)
    return {"bundle": str(out), "buffer": buffer.stem, "base_generation": gen}


def run_bundle(bundle: Path, base_dir: Path, key: bytes, out: Path, progress=None,
               force: bool = False) -> dict:
    """Train from a bundle on this machine's best device; write the adapter as a bundle."""
    import hashlib

    from soulctl.evolve.dream import train_adapter
    from soulctl.home.recipe_schemas import DreamRecipe
    from soulctl.evolve.training import read_buffer
    from soulctl.generations import sha256_file
    from soulctl.outfile import check_output

    check_output(out, force)  # refused now, not after the training
    files = _open(bundle, key)
    base = json.loads(files["base.json"])
    for name, sha in base["manifest"].items():
        path = Path(base_dir) / name
        if not path.is_file() or sha256_file(path) != sha:
            raise InvalidInput(f"{base_dir} is not {base['generation']}: {name} differs or is missing",
                               hint=f"copy generations/{base['generation']}/ from the soul home")
    recipe = DreamRecipe(**json.loads(files["recipe.json"]))
    recipe = recipe.model_copy(update={"device": "auto"})
    with tempfile.TemporaryDirectory() as tmp:
        buffer = Path(tmp) / "buffer.jsonl"
        buffer.write_bytes(files["buffer.jsonl"])
        staged = Path(tmp) / "adapter"
        meta = train_adapter(Path(base_dir), read_buffer(buffer), recipe, staged, progress)
        buffer_meta = json.loads(files.get("buffer.json", b"{}"))
        meta.update({"base_generation": base["generation"],
                     "buffer": buffer_meta.get("id", "bundle"),
                     "buffer_sha256": hashlib.sha256(files["buffer.jsonl"]).hexdigest(),
                     "log_ids": buffer_meta.get("log_ids", []),
                     "covered_ids": buffer_meta.get("covered_ids", []),
                     "held_out_ids": (buffer_meta.get("holdout") or {}).get("held_ids", []), "trained_remotely": True})
        payload = {p.name: p.read_bytes() for p in staged.iterdir() if p.is_file()}
        payload["meta.json"] = json.dumps(meta).encode()
        _write(out, _seal(payload, key), force)
    return {"bundle": str(out), "loss_before": meta["loss_before"], "loss_after": meta["loss_after"],
            "device": meta["device"]}


def import_bundle(home, bundle: Path, key: bytes) -> dict:
    from soulctl.generations.adapters import store_adapter
    from soulctl.evolve.dream import summary
    from soulctl.generations import generation_ids

    files = _open(bundle, key)
    if "adapter_model.safetensors" not in files or "meta.json" not in files:
        raise InvalidInput(f"{bundle} holds no adapter", hint="import the bundle that --run-bundle wrote")
    meta = json.loads(files.pop("meta.json"))
    if meta.get("base_generation") not in generation_ids(home):
        raise NotFound(f"the adapter was trained on {meta.get('base_generation')}, "
                       "which this soul home does not have")
    staged = home.data / f".staged-import-{os.getpid()}"
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    for name, data in files.items():
        (staged / name).write_bytes(data)
    adapter_id = store_adapter(home, staged, meta)
    return summary(adapter_id, meta)
