"""Taking packets in: parsing input (plain lines, JSON lines, a log export), checking it whole
(roles, prose, ids, references) and adding it — embedded once, then written in batches.
Library code: no typer, no rich."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from soulctl import jsontext
from soulctl.errors import AlreadyExists, InvalidInput, NotFound
from soulctl.home import Home
from soulctl.log.packets import NewPacket, Packet
from soulctl.log.store import Store
from soulctl.log.packets import MAX_PROSE_BYTES, ROLES, check_vectors
from soulctl.progress import progress_task

WRITE_BATCH = 512  # packets per transaction: whole batches survive a crash


# -- input ----------------------------------------------------------------------------------
def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}", hint=f"roles: {', '.join(ROLES)}")
    return role


def check_prose(text: str, where: str = "") -> str:
    prefix = f"{where}: " if where else ""
    if not text.strip():
        raise InvalidInput(f"{prefix}empty packet text", hint="a packet needs prose")
    size = len(text.encode("utf-8"))
    if size > MAX_PROSE_BYTES:
        raise InvalidInput(f"{prefix}packet text is {size / 1e6:.1f} MB, over the "
                           f"{MAX_PROSE_BYTES / 1e6:.0f} MB limit", hint="split it into smaller packets")
    return text


def decode_lines(data: bytes) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of raw stdin; invalid UTF-8 names its line."""
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"line {number}: invalid UTF-8 at byte {exc.start}",
                               hint="convert the input to UTF-8 (e.g. iconv -t utf-8)") from None


@dataclass
class Incoming:
    """Packets read from input, each with where it came from (for errors) and, when the
    input carried one, its vector."""

    packets: list[NewPacket]
    wheres: list[str]
    vectors: list | None = None


def parse_plain(data: bytes, defaults: dict) -> Incoming:
    """Each non-blank line of stdin is a packet with the defaults' role, session and meta."""
    incoming = Incoming([], [])
    for number, line in decode_lines(data):
        if not line.strip():
            continue
        check_prose(line, f"line {number}")
        incoming.packets.append(NewPacket(prose=line, **defaults))
        incoming.wheres.append(f"line {number}")
    return incoming


_JSONL_KEYS = {"prose", "text", "role", "session", "meta", "parent", "corrects", "ts", "id",
               "generation", "corpus", "resonance", "resonance_source"}
_EXPORT_KEYS = {"seq", "embed_model", "embedding"}  # what `log export` adds: read back, not stored


def parse_jsonl(data: bytes, defaults: dict, embedder=None) -> Incoming:
    """JSON lines {"prose"|"text", "role", "session", "meta", "parent", "ts", …} → packets.

    A `log export` reads back whole: `seq` is ignored (the log gives its own), and with an
    `embedder` (`--with-embeddings`) each line's `embedding` is kept, byte for byte, when its
    `embed_model` is the embedder's; otherwise the vectors are made anew."""
    incoming = Incoming([], [], [] if embedder is not None else None)
    for number, line in decode_lines(data):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})",
                               hint="each line must be one JSON object") from None
        except RecursionError:
            raise InvalidInput(f"{where}: JSON nested too deeply") from None
        jsontext.check(obj, where)
        if not isinstance(obj, dict):
            raise InvalidInput(f"{where}: expected a JSON object, got {type(obj).__name__}")
        unknown = set(obj) - _JSONL_KEYS - _EXPORT_KEYS
        if unknown:
            raise InvalidInput(f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
                               hint=f"keys: {', '.join(sorted(_JSONL_KEYS | _EXPORT_KEYS))}")
        prose = obj.get("prose", obj.get("text"))
        if not isinstance(prose, str):
            raise InvalidInput(f"{where}: needs a string `prose` (or `text`)")
        check_prose(prose, where)
        fields = dict(defaults)
        for key in ("role", "session", "parent", "corrects", "generation", "corpus", "resonance_source"):
            if obj.get(key) is not None:
                if not isinstance(obj[key], str):
                    raise InvalidInput(f"{where}: `{key}` must be a string")
                fields[key] = obj[key]
        check_role(fields["role"])
        if obj.get("meta") is not None:
            meta = obj["meta"]
            if isinstance(meta, str):  # an export from csv-minded tools may quote it
                try:
                    meta = json.loads(meta)
                except json.JSONDecodeError:
                    pass
            if not isinstance(meta, dict):
                raise InvalidInput(f"{where}: `meta` must be a JSON object")
            fields["meta"] = {**(defaults.get("meta") or {}), **meta}
        if obj.get("resonance") is not None:
            value = obj["resonance"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise InvalidInput(f"{where}: `resonance` must be a number in [0, 1]")
            fields["resonance"] = float(value)
            fields["resonance_source"] = fields.get("resonance_source") or "import"
        else:
            fields["resonance_source"] = None
        if obj.get("ts") is not None:
            fields["ts"] = parse_time(str(obj["ts"]), where)
        if obj.get("id") is not None:
            fields["id"] = check_id(obj["id"], where)
        incoming.packets.append(NewPacket(prose=prose, **fields))
        incoming.wheres.append(where)
        if embedder is not None:
            incoming.vectors.append(_line_vector(obj, embedder, where))
    return incoming


def _line_vector(obj: dict, embedder, where: str) -> np.ndarray:
    vector, model = obj.get("embedding"), obj.get("embed_model")
    if vector is None:
        raise InvalidInput(f"{where}: --with-embeddings needs an `embedding` on every line",
                           hint="export with `soulctl log export --with-embeddings`, or drop the flag to embed anew")
    if model != embedder.model_id:
        raise InvalidInput(f"{where}: the embedding was made by {model}, the configured embedder is "
                           f"{embedder.model_id}", hint="drop --with-embeddings to embed the prose anew")
    try:
        return check_vectors(vector, embedder.dim)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from None


def check_id(value, where: str) -> str:
    """A packet id as the log writes them: a UUID, in canonical form."""
    import uuid

    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidInput(f"{where}: id {value!r} is not a UUID",
                           hint="leave `id` out and the log gives one") from None


def check_references(home: Home, store: Store, incoming: Incoming) -> None:
    """Refuse what would be stored dangling or twice: ids already in the log or repeated in
    the input, a `parent` or `corrects` that names no packet (in the log or the input), a
    generation or corpus that does not exist."""
    from soulctl.generations import generation_ids

    first: dict[str, str] = {}
    for p, where in zip(incoming.packets, incoming.wheres):
        if p.id is not None:
            if p.id in first:
                raise InvalidInput(f"{where}: id {p.id} repeats {first[p.id]}", hint="each packet needs its own id")
            first[p.id] = where
    if clash := store.existing_ids(list(first)):
        pid = min(clash, key=lambda i: incoming.wheres.index(first[i]))
        raise AlreadyExists(f"{first[pid]}: a packet with id {pid} is already in the log",
                            hint="leave `id` out to add it as a new packet")
    wanted = {ref for p in incoming.packets for ref in (p.parent, p.corrects) if ref}
    known = set(first) | store.existing_ids(sorted(wanted - set(first)))
    gens = corpora = None
    for p, where in zip(incoming.packets, incoming.wheres):
        for name, ref in (("parent", p.parent), ("corrects", p.corrects)):
            if ref and ref not in known:
                raise NotFound(f"{where}: {name} {ref} names no packet in the log",
                               hint="see `soulctl log ls`; a reference must name a whole packet id")
        if p.generation is not None:
            gens = gens if gens is not None else set(generation_ids(home))
            if p.generation not in gens:
                raise NotFound(f"{where}: generation {p.generation} does not exist", hint="see `soulctl gen ls`")
        if p.corpus is not None:
            corpora = corpora if corpora is not None else {d.name for d in home.corpora.glob("*") if d.is_dir()}
            if missing := [c for c in p.corpus.split(",") if c not in corpora]:
                raise NotFound(f"{where}: corpus {missing[0]} does not exist", hint="see `soulctl mount ls`")


def take_in(home: Home, store: Store, embedder, text: str | None, data: bytes | None, *,
            role: str = "user", session: str | None = None, meta: str | None = None,
            parent: str | None = None, corrects: str | None = None, jsonl: bool = False,
            with_embeddings: bool = False) -> Incoming:
    """What `log add` was given — TEXT, or stdin's bytes as lines or JSON lines — parsed and
    checked whole against the log (references, ids, generations, corpora) before anything is
    written. `meta` is the --meta JSON text; the defaults apply to every packet."""
    from soulctl.errors import UsageError
    from soulctl.log.packets import env_session, new_session_id

    check_role(role)
    if with_embeddings and not jsonl:
        raise UsageError("--with-embeddings reads vectors from --jsonl input", hint="add --jsonl")
    meta_obj = jsontext.loads(meta, "--meta") if meta is not None else None
    if meta is not None and not isinstance(meta_obj, dict):
        raise InvalidInput("--meta must be a JSON object")
    for flag, ref in (("--parent", parent), ("--corrects", corrects)):
        if ref and not store.existing_ids([ref]):
            raise NotFound(f"{flag} {ref} names no packet in the log",
                           hint="see `soulctl log ls`; give a whole packet id")
    defaults = dict(role=role, session=session or env_session() or new_session_id(), meta=meta_obj,
                    parent=parent, corrects=corrects, generation=current_generation(home))
    if text is not None:
        if jsonl:
            raise InvalidInput("give TEXT or --jsonl on stdin, not both")
        incoming = Incoming([NewPacket(prose=check_prose(text), **defaults)], ["TEXT"])
    else:
        incoming = (parse_jsonl(data, defaults, embedder if with_embeddings else None) if jsonl
                    else parse_plain(data, defaults))
        if not incoming.packets:
            raise InvalidInput("no packets on stdin (only blank lines)")
    check_references(home, store, incoming)
    return incoming


def parse_time(text: str, where: str = "time") -> _dt.datetime:
    """ISO 8601 (2026-11-24, 2026-11-24T10:00Z) or relative (30m, 2h, 7d ago)."""
    value = text.strip().lower().removesuffix(" ago")
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if value[:-1].isdigit() and value[-1:] in units:
        try:
            return _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=int(value[:-1]) * units[value[-1]])
        except OverflowError:
            raise InvalidInput(f"{where}: {text!r} reaches before the year 1",
                               hint="use a smaller age, or an ISO 8601 time") from None
    try:
        parsed = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{where}: cannot read time {text!r}",
                           hint="use ISO 8601 (2026-11-24T10:00Z) or an age like 30m, 2h, 7d") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)


# -- writing --------------------------------------------------------------------------------
def current_generation(home: Home) -> str | None:
    from soulctl.generations import current

    try:
        return current(home)
    except OSError:
        return None


def check_embedder(store: Store, embedder) -> None:
    from soulctl.log.store import embedder_mismatch

    record = store.embedder_record()
    if record and (record[0] != embedder.model_id or record[1] != embedder.dim):
        raise embedder_mismatch(record[0], embedder.model_id)


def add_packets(store: Store, embedder, packets: Sequence[NewPacket], progress=None,
                vectors: Sequence | None = None, between: Callable[[], None] | None = None) -> Iterator[Packet]:
    """Embed and write packets in batches; each batch is one transaction of whole packets.
    `vectors`, when given (an import that kept its embeddings), are written as they are;
    `between` is called after each batch (where Ctrl-C stops a long add: `Interrupts.check`).

    (Overlapping the write with the next batch's embedding was measured: on 2 cores the
    writer only takes CPU from torch, so batches run one after the other.)
    """
    check_embedder(store, embedder)
    with progress_task(progress, "Adding packets", len(packets)) as task:
        for start in range(0, len(packets), WRITE_BATCH):
            batch = packets[start:start + WRITE_BATCH]
            if vectors is not None:
                batch_vectors = np.stack(vectors[start:start + WRITE_BATCH]).astype(np.float32)
            else:
                batch_vectors = embedder.encode([p.prose for p in batch])
            yield from store.add(batch, batch_vectors, embedder.model_id)
            task.advance(len(batch))
            if between is not None:
                between()
