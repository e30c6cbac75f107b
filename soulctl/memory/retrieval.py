"""The retrieved sector of a turn: what the soul's memory brings to the prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from soulctl.errors import InvalidInput
from soulctl.prose import norm

if TYPE_CHECKING:
    from soulctl.memory.conversation import Conversation

LOG_HITS = 6  # log packets weighed for the retrieved sector each turn


def retrieved_sector(chat: Conversation, query: str, vector: np.ndarray | None = None) -> tuple[str, list[str]]:
    """The retrieved sector for `query`: mounted corpora first (half the sector when the log
    is searched too), then the log's packets by meaning and keyword, answers ranked above
    restated questions — skipping what the window already holds, flush records, and the
    user's own earlier wordings of the question. (text, citations)"""
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
        from soulctl.log.search import restates, search

        used = sum(chat.count(b) for b in blocks)
        # what the window already holds costs tokens twice: skipped, by id and by text
        in_window = {t.packet_id for t in chat.window} | {norm(t.content) for t in chat.window}
        try:
            found = search(chat.store, chat.embedder, query, LOG_HITS, query_vector=vector, answers=True)
        except InvalidInput:
            found = []
        for r in found:
            if (r.packet.id in in_window or norm(r.packet.prose) in in_window
                    or (r.packet.meta or {}).get("kind") == "flush" or restates(query, r.packet)):
                continue
            text = f"[log {r.packet.ts.date()} {r.packet.role}] {r.packet.prose}\n"
            cost = chat.count(text)
            if used + cost > budget:
                continue
            blocks.append(text)
            cites.append(f"log:{r.packet.id}")
            used += cost
    return "\n".join(blocks), cites
