"""A rewrite held to its sector: the notebook's or the self-definition's size, asked again once,
then trimmed, with every step noted for the log (DESIGN §5)."""

from __future__ import annotations

import logging

from soulctl.errors import InvalidInput

log = logging.getLogger(__name__)

REWRITE_SLACK = 32  # tokens a rewrite may write past its limit, so a cut-off draft shows


def write_within(writer, counter, ask: list[dict], limit: int, what: str) -> tuple[str, str, list[str]]:
    """`writer`'s answer to `ask` within `limit` tokens of `counter` (the serving model): asked again
    once, then trimmed, each step noted. Returns (text, notes for the reason, over-long
    drafts), the drafts to be kept in the log, never silently dropped."""
    if (need := writer.count_chat_tokens(ask) + limit + REWRITE_SLACK) > writer.context_length:
        raise InvalidInput(f"rewriting the {what} needs {need} tokens; the model's context is "
                           f"{writer.context_length}", hint="shorten the self-definition or the notebook "
                           "(`soulctl notebook set`), or serve the soul with a larger context")
    text = writer.chat(ask, max_tokens=limit + REWRITE_SLACK)
    notes, drafts = "", []
    if (size := counter.count_tokens(text)) > limit:
        drafts.append(text)
        notes += f"; re-asked (draft of {size} tokens > {limit})"
        again = ask + [{"role": "assistant", "content": text},
                       {"role": "user", "content": f"That is too long. Shorten it to at most {limit} tokens."}]
        if writer.count_chat_tokens(again) + limit + REWRITE_SLACK <= writer.context_length:
            text = writer.chat(again, max_tokens=limit + REWRITE_SLACK)
        if (size := counter.count_tokens(text)) > limit:
            if text != drafts[-1]:
                drafts.append(text)
            text = trim_to_tokens(counter, text, limit)
            notes += f"; trimmed from {size} to {limit} tokens"
            log.warning("%s rewrite trimmed from %d to %d tokens", what, size, limit)
    return text.strip(), notes, drafts


def trim_to_tokens(engine, text: str, limit: int) -> str:
    """The longest prefix within `limit` tokens, cut at a sentence or line end when possible."""
    cut = engine.truncate(text, limit)
    for stop in ("\n", ". "):
        at = cut.rfind(stop)
        if at > len(cut) // 2:
            return cut[: at + 1].strip()
    return cut.strip()
