"""`store migrate`: copy the log from one store to another through the Store interface alone —
packets with their ids, seqs and vectors byte for byte (no re-embedding), then resonance marks
and notebook/self versions — in batches, resumable, verified by counts and a checksum. The
source is only read."""

from __future__ import annotations

import hashlib

import numpy as np

from soulctl.errors import CheckFailed, InvalidInput
from soulctl.log.packets import Filters
from soulctl.log.store import Store
from soulctl.progress import progress_task

BATCH = 5000


def last_seq(store: Store) -> int:
    newest = list(store.list(Filters(), limit=1))  # whole: a suspended listing holds its read open
    return newest[0].seq if newest else 0


def checksum(store: Store, batch: int = BATCH) -> tuple[int, str]:
    """(packets, sha256 over each packet's seq, id, prose and vector bytes in seq order)."""
    digest, count, after = hashlib.sha256(), 0, 0
    while True:
        rows, vecs = store.raw_packets(after, batch)
        if not rows:
            return count, digest.hexdigest()
        for row, vec in zip(rows, vecs):
            digest.update(f"{row['seq']}\0{row['id']}\0{row['prose']}\0".encode())
            digest.update(np.ascontiguousarray(vec, dtype="<f4").tobytes())
        count += len(rows)
        after = rows[-1]["seq"]


def migrate(source: Store, target: Store, batch: int = BATCH, progress=None) -> dict:
    have = source.embedder_record()
    there = target.embedder_record()
    if have is None:
        raise InvalidInput("the source log is empty: nothing to migrate")
    if there is not None and there != have:
        raise InvalidInput(f"the target holds vectors of {there[0]} ({there[1]}-d), the source "
                           f"{have[0]} ({have[1]}-d)", hint="migrate into an empty store")
    resumed = last_seq(target)
    if resumed:  # the target must be this source's own prefix: a migration cut off before
        mine, _ = source.raw_packets(resumed - 1, 1)
        theirs, _ = target.raw_packets(resumed - 1, 1)
        if not mine or not theirs or mine[0]["id"] != theirs[0]["id"]:
            raise InvalidInput("the target log already holds other packets",
                               hint="migrate into an empty store (or the one a cut-off migrate began)")
    target.create(*have)
    total = source.count()
    copied, after = 0, resumed
    with progress_task(progress, "Copying packets", total) as task:
        task.advance(resumed and target.count())
        while True:
            rows, vecs = source.raw_packets(after, batch)
            if not rows:
                break
            target.load_raw(rows, vecs)
            copied += len(rows)
            after = rows[-1]["seq"]
            task.advance(len(rows))
    marks, memory = source.raw_marks(), source.raw_memory()
    target.load_raw([], np.zeros((0, have[1]), np.float32), marks=marks, memory=memory)
    target.reindex()
    want, got = checksum(source, batch), checksum(target, batch)
    counts = {"packets": (want[0], got[0]), "marks": (len(marks), len(target.raw_marks())),
              "memory_versions": (len(memory), len(target.raw_memory()))}
    wrong = [f"{name} {a} → {b}" for name, (a, b) in counts.items() if a != b]
    if wrong or want[1] != got[1]:
        raise CheckFailed("the migrated log differs from its source: " + (", ".join(wrong) or "checksum"),
                          hint="run the migrate again: it resumes and re-checks")
    return {"packets": want[0], "copied": copied, "resumed_after_seq": resumed, "marks": len(marks),
            "memory_versions": len(memory), "checksum": want[1]}
