"""What makes a generation impossible to forge quietly: a chain of digests back to generation 0,
a seal only this home can make, and generation 0 re-derived from the shipped model.

- Each lineage records `manifest_sha256` (its manifest's digest) and `parent_sha256` (the
  parent lineage's digest, seal included), so rewriting any generation breaks its child's link.
- Each lineage carries `seal`: an HMAC-SHA256 of everything else in it, keyed by the home's
  secret `data/lineage.key` (0600). The key lives outside `generations/`, so whoever can write
  a generation's files (or all of them) cannot make a lineage that verifies — not even for the
  newest generation, which no child links to.
- Generation 0 is checked against a re-derivation of the model it was made from (the shipped
  GGUF dequantized again with the same tools), cached per machine by the source's sha256, so
  even a forger holding the key cannot change the anchor.

A home made before lineages were sealed is sealed once by `soulctl gen seal` (verify.py), after
every file has verified against its manifest and generation 0 against its re-derivation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path

from soulctl.errors import InvalidInput, NotFound
from soulctl.home import Home

KEY = "lineage.key"
UNSEALED = ("manifest_sha256", "parent_sha256", "seal")  # what sealing adds to a lineage


def canonical(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(record: dict) -> str:
    """A lineage's digest: everything in it, its seal included (what a child links to)."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "id"})).hexdigest()


def manifest_digest(manifest: dict) -> str:
    return hashlib.sha256(canonical(manifest)).hexdigest()


# -- the home's key ---------------------------------------------------------------------------
def key_path(home: Home) -> Path:
    return home.data / KEY


def home_key(home: Home, create: bool = False) -> bytes | None:
    """The home's sealing key; made (0600, never overwritten) when `create` and missing."""
    path = key_path(home)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        return home_key(home)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise InvalidInput(f"{path} is not a sealing key (64 hex digits)",
                           hint="restore it from a backup; without it no generation of this home verifies")
    return key


def _mac(key: bytes, record: dict) -> str:
    body = {k: v for k, v in record.items() if k not in ("seal", "id")}
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def seal(home: Home, record: dict, parent: dict | None) -> dict:
    """`record` with its manifest digest, its parent's digest and its seal added."""
    key = home_key(home, create=True)
    sealed = {k: v for k, v in record.items() if k not in UNSEALED}
    sealed["manifest_sha256"] = manifest_digest(sealed.get("manifest") or {})
    sealed["parent_sha256"] = digest(parent) if parent is not None else None
    sealed["seal"] = _mac(key, sealed)
    return sealed


def seal_text(home: Home, payload: dict) -> str:
    """A seal for a record soulctl keeps beside the generations (verified stats, dropped
    weights), so a forger cannot rewrite those either."""
    key = home_key(home)
    return _mac(key, payload) if key else ""


def sealed_ok(home: Home, payload: dict, mark: str) -> bool:
    key = home_key(home)
    return bool(key) and hmac.compare_digest(_mac(key, payload), mark or "")


# -- the chain ----------------------------------------------------------------------------------
def raw_lineage(home: Home, gid: str) -> dict:
    from soulctl.generations.lineage import LINEAGE, check_shape

    path = home.generations / gid / LINEAGE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"{gid}/{LINEAGE} is missing") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{gid}/{LINEAGE} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{gid}/{LINEAGE} is not a JSON object")
    check_shape(data, f"{gid}/{LINEAGE}")
    return data


def chain_problems(home: Home, gid: str) -> list[str]:
    """What is wrong with `gid`'s lineage and every ancestor's, each naming the file: unsealed,
    a seal that does not match, a manifest digest or a parent link that does not. Empty when
    the chain holds back to generation 0 (whose weights anchor_problems checks)."""
    from soulctl.errors import SoulError

    key = home_key(home)
    if key is None:
        return [f"{key_path(home)} is missing: this home's lineages cannot be checked "
                "(`soulctl gen seal` seals a home made before sealing)"]
    problems, seen, child = [], set(), None
    while gid is not None and gid not in seen:
        seen.add(gid)
        where = f"{gid}/lineage.json"
        try:
            record = raw_lineage(home, gid)
        except SoulError as exc:
            return problems + [exc.message]
        if child is not None and child.get("parent_sha256") != digest(record):
            problems.append(f"{where} is not the lineage its child was made from (the parent link differs)")
        if not record.get("seal"):
            problems.append(f"{where} is not sealed (`soulctl gen seal`, after checking the home)")
        elif not hmac.compare_digest(_mac(key, record), record["seal"]):
            problems.append(f"{where} was changed after it was sealed (its seal does not match)")
        if record.get("manifest_sha256") and record["manifest_sha256"] != manifest_digest(record.get("manifest") or {}):
            problems.append(f"{where}: the manifest does not match its digest")
        if (record.get("parent") is None) != (record.get("parent_sha256") is None) and record.get("seal"):
            problems.append(f"{where}: the parent link is missing")
        child, gid = record, record.get("parent")
    return problems


# -- generation 0, re-derived ----------------------------------------------------------------------
def _cache_dir() -> Path:
    base = os.environ.get("SOULCTL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "soulctl")
    return Path(base) / "anchors"


def _source_file(source: dict) -> Path | None:
    from soulctl.generations.base import bundled_gguf

    if source.get("package"):
        try:
            return bundled_gguf()
        except Exception:  # noqa: BLE001 (the package is gone: nothing to re-derive from)
            return None
    path = Path(source.get("path") or "")
    return path if path.exists() else None


def _derivation_key(source: dict, tools: dict) -> str:
    parts = {"sha256": source.get("sha256"), "dtype": source.get("dtype"), "kind": source.get("kind"),
             "tools": {k: tools.get(k) for k in ("torch", "transformers", "gguf")}}
    return hashlib.sha256(canonical(parts)).hexdigest()[:32]


def _file_sha256(path: Path, sha256_file) -> str:
    """A source model's sha256, hashed again only when its stat changes (a 245 GB GGUF is not
    re-read at every serve)."""
    st = path.stat()
    stamp = [str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    cached = _cache_dir() / f"sha-{hashlib.sha256(canonical(stamp)).hexdigest()[:32]}.json"
    try:
        return json.loads(cached.read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = sha256_file(path)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{os.getpid()}.sha.tmp")
        tmp.write_text(json.dumps({"stamp": stamp, "sha256": value}))
        os.replace(tmp, cached)
    except OSError:
        pass
    return value


def remember_derivation(lineage: dict) -> None:
    """After init: generation 0's manifest is what its source derives to with these tools."""
    source, tools = lineage.get("source") or {}, lineage.get("tools") or {}
    if source.get("kind") != "gguf" or not source.get("sha256"):
        return
    try:
        folder = _cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{os.getpid()}.tmp"
        tmp.write_text(json.dumps(lineage.get("manifest") or {}))
        os.replace(tmp, folder / f"{_derivation_key(source, tools)}.json")
    except OSError:  # a read-only cache: the next verify derives it again
        pass


def anchor_problems(home: Home, gid: str, progress=None) -> tuple[list[str], str | None]:
    """(problems, note) for generation 0: its source's sha256 against the file it names, and
    its manifest against the source re-derived with the same tools (cached per machine). The
    note says what could not be checked (the source gone, other tool versions)."""
    from soulctl.generations.base import BaseSource, materialize
    from soulctl.generations.files import manifest, sha256_file

    record = raw_lineage(home, gid)
    source, tools = record.get("source") or {}, record.get("tools") or {}
    if record.get("parent") is not None:
        return [f"{gid} is an anchor with a parent"], None
    if not source:
        return [], "an anchor with no source model recorded is checked by its seal only"
    path = _source_file(source)
    if path is None:
        return [], f"its source model ({source.get('package') or source.get('path')}) is not on this machine"
    if source.get("kind") != "gguf":
        return [], "an anchor copied from an HF directory is checked by its seal only"
    if _file_sha256(path, sha256_file) != source.get("sha256"):
        return [f"{gid}: its source model {path} is not the file it was made from (sha256 differs)"], None
    from importlib.metadata import version

    now = {"torch": version("torch"), "transformers": version("transformers")}
    if any(tools.get(k) not in (None, v) for k, v in now.items()):
        return [], (f"made with {', '.join(f'{k} {tools.get(k)}' for k in now)}; this machine has "
                    f"{', '.join(f'{k} {v}' for k, v in now.items())}: not re-derived bit for bit")
    cached = _cache_dir() / f"{_derivation_key(source, tools)}.json"
    try:
        derived = json.loads(cached.read_text())
    except (OSError, ValueError):
        with tempfile.TemporaryDirectory(prefix="soulctl-anchor-") as tmp:
            materialize(BaseSource("gguf", path, source.get("name") or path.stem), Path(tmp),
                        source.get("dtype") or "float32", progress)
            derived = manifest(Path(tmp))
        remember_derivation({**record, "manifest": derived})
    expected = record.get("manifest") or {}
    wrong = sorted(n for n in set(expected) | set(derived)
                   if (expected.get(n) or {}).get("sha256") != (derived.get(n) or {}).get("sha256"))
    return [f"{gid}/{name} is not what the shipped model derives to" for name in wrong], None
