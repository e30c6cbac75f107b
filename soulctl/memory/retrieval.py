"""The retrieved sector of a turn: what the soul's memory brings to the prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from soulctl.errors import InvalidInput
from soulctl.prose import norm

if TYPE_CHECKING:
    from soulctl.memory.conversation import Conversation

LOG_HITS = 10  # log packets weighed for the retrieved sector each turn
SCORE_SPAN = 4.0  # a hit this far below the best (the re-ranking's log-odds) is left out


def retrieved_sector(chat: Conversation, query: str, vector: np.ndarray | None = None) -> tuple[str, list[str]]:
    """The retrieved sector for `query`: mounted corpora first (half the sector when the log
    is searched too), then the log's packets as log search ranks them (log_blocks), as many as
    fit. (text, citations)"""
    from soulctl.corpus.mounts import mounted, render_hit, retrieve

    budget = chat.mem.retrieved_tokens - (chat.count(chat.instructions) if chat.instructions else 0)
    blocks, cites = [], []
    if budget and mounted(chat.home):
        hits = retrieve(chat.home, query, chat.embedder, budget // 2 if chat.retrieve_log else budget,
                        chat.count, chat.wardrobe, query_vector=vector)
        for hit in hits:
            blocks.append(render_hit(hit))
            cites.append(f"{hit.corpus}:{hit.cite}")
    if budget and chat.retrieve_log:
        used = sum(chat.count(b) for b in blocks)
        for text, cite in log_blocks(chat, query, vector):
            cost = chat.count(text)
            if used + cost <= budget:
                blocks.append(text)
                cites.extend(cite)
                used += cost
    return "\n".join(blocks), cites


def log_blocks(chat: Conversation, query: str, vector: np.ndarray | None) -> list[tuple[str, list[str]]]:
    """The log's part of the sector, strongest first, as (text, citations): the search's best
    hits down to SCORE_SPAN below the first, each after the turn before it when the two are a
    dialogue (another speaker answering, or asking) — skipping what the window already holds,
    flush records and the user's own earlier wordings of the question."""
    from soulctl.log.search import restates, search

    # what the window already holds costs tokens twice: skipped, by id and by text
    in_window = {t.packet_id for t in chat.window} | {norm(t.content) for t in chat.window}
    try:
        found = search(chat.store, chat.embedder, query, LOG_HITS, query_vector=vector)
    except InvalidInput:
        return []
    kept = [r.packet for r in found if r.hit.score >= found[0].hit.score - SCORE_SPAN
            and r.packet.id not in in_window and norm(r.packet.prose) not in in_window
            and (r.packet.meta or {}).get("kind") != "flush" and not restates(query, r.packet)]
    before = _before(chat.store, kept)
    shown: set[str] = set()
    out = []
    for packet in kept:
        turns = [t for t in (before.get(packet.seq), packet) if t is not None and t.id not in shown
                 and t.id not in in_window and norm(t.prose) not in in_window and not restates(query, t)]
        if packet not in turns:
            continue
        shown.update(t.id for t in turns)
        out.append(("".join(f"[log {t.ts.date()} {t.role}] {t.prose}\n" for t in turns),
                    [f"log:{t.id}" for t in turns]))
    return out


def _before(store, packets: list) -> dict:
    """Each packet's previous turn in its session, when it is another speaker's (a dialogue)."""
    if not packets:
        return {}
    with store.candidates() as c:
        if c is None:
            return {}
        prior = c.by_seq([p.seq - 1 for p in packets if p.seq > 1])
    out = {}
    for p in packets:
        b = prior.get(p.seq - 1)
        if b is not None and b.session == p.session and (b.meta or {}).get("kind") != "flush" and (
                (b.meta or {}).get("speaker", b.role) != (p.meta or {}).get("speaker", p.role)):
            out[p.seq] = b
    return out
