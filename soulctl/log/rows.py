"""Packet rows as every backend reads and writes them: the columns in their order, new rows
from NewPacket objects, and Packet objects from rows (times are naive UTC in the stores)."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Sequence

import numpy as np

from soulctl.log.packets import NewPacket, Packet, new_id, utcnow

COLUMNS = ("id", "seq", "ts", "session", "role", "prose", "embed_model", "generation", "corpus",
           "resonance", "resonance_source", "parent", "corrects", "meta")
SELECT = ", ".join(COLUMNS)
# the packets table as stored (resonance as written), in the order `store migrate` copies it
RAW = ("seq", "id", "ts", "session", "role", "prose", "embed_model", "generation", "corpus",
       "resonance", "resonance_source", "parent", "corrects", "meta")


def naive_utc(value: _dt.datetime) -> _dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value


def new_rows(packets: Sequence[NewPacket], embeddings: np.ndarray, embed_model: str, first_seq: int) -> list[dict]:
    now = utcnow()
    rows = []
    for i, (p, vec) in enumerate(zip(packets, embeddings)):
        ts = p.ts or now
        rows.append({
            "id": p.id or new_id(), "seq": first_seq + i, "ts": naive_utc(ts), "session": p.session,
            "role": p.role, "prose": p.prose, "embedding": vec, "embed_model": embed_model,
            "generation": p.generation, "corpus": p.corpus, "resonance": p.resonance,
            "resonance_source": p.resonance_source, "parent": p.parent, "corrects": p.corrects,
            "meta": json.dumps(p.meta, ensure_ascii=False) if p.meta is not None else None,
        })
    return rows


def packet_from_new_row(row: dict) -> Packet:
    meta = json.loads(row["meta"]) if row["meta"] else None
    return Packet(id=row["id"], seq=row["seq"], ts=row["ts"].replace(tzinfo=_dt.timezone.utc),
                  session=row["session"], role=row["role"], prose=row["prose"],
                  embed_model=row["embed_model"], generation=row["generation"],
                  corpus=row["corpus"], resonance=row["resonance"],
                  resonance_source=row["resonance_source"], parent=row["parent"],
                  corrects=row["corrects"], meta=meta)


def packet_from_row(row: tuple, with_embedding: bool = False) -> Packet:
    data = dict(zip(COLUMNS, row))
    meta = data["meta"]
    data["meta"] = json.loads(meta) if isinstance(meta, str) else meta
    data["ts"] = data["ts"].replace(tzinfo=_dt.timezone.utc)
    packet = Packet(**data)
    if with_embedding:
        packet.embedding = list(row[len(COLUMNS)])
    return packet
