"""A rewrite of the notebook or the self-definition is a proposal, checked before it is kept.

The model writes its own memory; nothing here trusts it to. Each line (a note, a sentence) of
the previous version must be held by the proposal — by meaning, through the embedder — or be
superseded by a proposal line on the same subject that the conversation grounds ("the project
is now called Birch" over "the project is called Aster"). A proposal that drops lines is
re-asked once with them named; what is still dropped is put back, and only when the sector is
full are the oldest lines evicted, each as a packet the log can find. A proposal that repeats a
block is re-asked; the notebook keeps the first copy, a self-definition is refused. The review
is kept with the version (`notebook history`, `notebook diff`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from soulctl.errors import CheckFailed
from soulctl.prose import REPEAT_WORDS, WORD as _WORD, norm as _norm, repeated as repeats, split

COVERED = 0.78  # cosine at which a proposal line holds a previous line (MiniLM: a paraphrase ~0.8-0.95)
RELATED = 0.40  # a proposal line this close (the same subject), grounded in the window ...
GROUNDED = 0.45  # ... (this close to one of its turns), that says something changed, supersedes
# a change said in words: without one, a related new line ("the passport expires in March") is
# a second fact, not a correction of the first ("the passport is in the blue folder")
CHANGE = re.compile(r"\b(now|renamed|rename|moved|changed?|instead|no longer|switched|new|anymore|"
                    r"cancel+ed|replaced|became|from now on)\b", re.IGNORECASE)
# the rewrite prompt's own framing, which a small model copies into its answer
ECHOES = ("your self-definition now:", "your self-definition:", "current notebook:", "conversation:",
          "the conversation so far:")

_ECHO = re.compile("|".join(re.escape(e) for e in ECHOES), re.IGNORECASE)
_TRANSCRIPT = re.compile(r"^\s*(user|assistant|soul|majordomo):\s", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s+")


@dataclass
class Review:
    """What a checked rewrite did to the previous version."""

    kept: int = 0  # previous lines the proposal holds
    superseded: list[dict] = field(default_factory=list)  # {"line", "by"}
    dropped: list[str] = field(default_factory=list)  # lost by the proposal, then put back
    evicted: list[str] = field(default_factory=list)  # put back, then out for room (oldest first)
    repeated: list[str] = field(default_factory=list)  # sentences the proposal wrote twice
    echoed: list[str] = field(default_factory=list)  # the prompt's framing, copied into it
    reasked: list[str] = field(default_factory=list)  # why the writer was asked again
    unsupported: list[str] = field(default_factory=list)  # new lines nothing said supports: refused
    cited: list[dict] = field(default_factory=list)  # {"line", "packet"}: new lines and what grounds them

    def faults(self) -> bool:
        return bool(self.dropped or self.repeated or self.echoed)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        parts = [f"kept {self.kept}"]
        for name in ("superseded", "dropped", "evicted", "repeated", "unsupported"):
            if n := len(getattr(self, name)):
                parts.append(f"{name} {n}" if name != "dropped" else f"restored {n}")
        if self.reasked:
            parts.append("re-asked")
        return ", ".join(parts)


def lines_of(text: str) -> list[str]:
    """The notes of a text: its lines, long ones split into sentences, bullets and headings off."""
    out = []
    for raw in (text or "").splitlines():
        line = _BULLET.sub("", raw).strip()
        if not line or line.startswith("#"):
            continue
        out += [s for s in split(line) if len(_WORD.findall(s)) >= 2]
    return out


def specifics(line: str) -> set[str]:
    """The words a paraphrase must keep: numbers and names (capitalised past the first word).
    MiniLM puts "my dentist is Varga" next to "my dentist is Okafor"; a line is held only
    when its specifics are in the proposal too."""
    words = _WORD.findall(line)
    return {w.lower() for i, w in enumerate(words)
            if any(c.isdigit() for c in w) or (i > 0 and w[0].isupper() and w != "I")}


def echoes(text: str) -> list[str]:
    """The prompt's framing, or lines of the quoted conversation, copied into the text."""
    low = text.lower()
    return [e for e in ECHOES if e in low] + [line.strip() for line in text.splitlines() if _TRANSCRIPT.match(line)]


def without_repeats(text: str) -> str:
    """The text with every repeated sentence's later copies, the prompt's framing and any copied
    line of the quoted conversation removed."""
    seen, kept = set(), []
    for raw in text.splitlines():
        if _TRANSCRIPT.match(raw):  # a line of the quoted conversation, copied
            continue
        out = []
        for s in split(raw):
            s = _ECHO.sub("", s).strip()
            key = _norm(s)
            if not key:
                continue
            if len(key.split()) >= REPEAT_WORDS:
                if key in seen:
                    continue
                seen.add(key)
            out.append(s)
        if out or not raw.strip():
            kept.append(" ".join(out))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def review(previous: str, proposal: str, window: list[str], embedder) -> Review:
    """Which previous lines the proposal holds, supersedes or drops; its repeats and echoes."""
    result = Review(repeated=repeats(proposal), echoed=echoes(proposal))
    before = lines_of(previous)
    if not before:
        return result
    after = lines_of(proposal)
    flat = _norm(proposal)
    held = [_norm(line) in flat for line in before]
    window = [w for w in window if w.strip()]
    vectors = embedder.encode(before + after + window)
    old, new, turns = vectors[:len(before)], vectors[len(before):len(before) + len(after)], \
        vectors[len(before) + len(after):]
    sims = old @ new.T if len(after) else np.zeros((len(before), 0), np.float32)
    near = new @ turns.T if len(after) and len(turns) else np.zeros((len(after), 1), np.float32)
    grounded = near.max(axis=1) if len(turns) else np.zeros(len(after))
    ground = near.argmax(axis=1) if len(turns) else np.zeros(len(after), dtype=int)
    words = set(flat.split())
    for i, line in enumerate(before):
        best = int(np.argmax(sims[i])) if sims.shape[1] else -1
        score = float(sims[i, best]) if best >= 0 else 0.0
        if held[i] or (score >= COVERED and specifics(line) <= words):
            result.kept += 1
        elif score >= RELATED and grounded[best] >= GROUNDED and (
                CHANGE.search(after[best]) or CHANGE.search(window[ground[best]])):
            result.superseded.append({"line": line, "by": after[best]})
        else:
            result.dropped.append(line)
    return result


def ground(text: str, previous: str, window: list[str], ids: list[str | None], embedder,
           found: Review) -> str:
    """The notebook proposal with only the new lines the conversation supports: a line no
    previous line holds stays when one turn of the window holds its names and numbers (a line
    with none: when it is near one turn in meaning), and then cites that turn's packet; a line
    nothing supports is refused, and kept in `found.unsupported` for the record."""
    prior = _norm(previous)
    prior_words = set(prior.split())
    turns = [(w, i) for w, i in zip(window, ids) if w.strip()]
    bodies = [_BULLET.sub("", raw).strip() for raw in text.splitlines()]
    fresh = [n for n, body in enumerate(bodies) if body and not body.startswith("#") and _norm(body)
             and _norm(body) not in prior and not (specifics(body) and specifics(body) <= prior_words)]
    if not fresh:
        return text
    vectors = embedder.encode([bodies[n] for n in fresh] + [w for w, _ in turns])
    near = vectors[:len(fresh)] @ vectors[len(fresh):].T if turns else np.zeros((len(fresh), 0), np.float32)
    lines = text.splitlines()
    for row, n in enumerate(fresh):
        names = specifics(bodies[n])
        holders = [j for j, (w, _) in enumerate(turns) if names and names <= set(_norm(w).split())]
        if not names and near.shape[1] and float(near[row].max()) >= GROUNDED:
            holders = [int(near[row].argmax())]
        if not holders:
            found.unsupported.append(bodies[n])
            lines[n] = None
            continue
        best = max(holders, key=lambda j: float(near[row, j]))
        packet = turns[best][1]
        found.cited.append({"line": bodies[n], "packet": packet})
        if packet and f"[log {packet}]" not in lines[n]:
            lines[n] = lines[n].rstrip() + f" [log {packet}]"
    return "\n".join(line for line in lines if line is not None)


def reask_message(found: Review, limit: int) -> str:
    """What the writer is told when its proposal is asked again."""
    parts = []
    if found.dropped:
        parts.append("Your draft drops these notes from the previous version:\n"
                     + "\n".join(f"- {line}" for line in found.dropped)
                     + "\nKeep each of them, unless the conversation changed it (then write the new fact).")
    if found.repeated or found.echoed:
        parts.append("Your draft repeats itself" + (": " + "; ".join(found.repeated[:3]) if found.repeated else "")
                     + ". Write each thing once, and only the text itself, no headings from my request.")
    return "\n\n".join(parts) + f"\nWrite the whole text again, at most {limit} tokens."


def restore(text: str, found: Review, previous: str, limit: int, counter) -> str:
    """The proposal with its dropped lines put back; while it is over `limit` tokens, the
    oldest lines (earliest in the previous version, then the proposal's own) are evicted."""
    if not found.dropped:
        return text
    before = lines_of(previous)
    age = {_norm(line): i for i, line in enumerate(before)}
    lines = [line for line in text.splitlines() if line.strip()] + [f"- {line}" for line in found.dropped]
    while counter.count_tokens("\n".join(lines)) > limit and len(lines) > 1:
        # the oldest: the earliest previous line a line repeats; the proposal's new lines last
        ages = [age.get(_norm(_BULLET.sub("", line)), len(before) + n) for n, line in enumerate(lines)]
        oldest = int(np.argmin(ages))
        found.evicted.append(_BULLET.sub("", lines.pop(oldest)).strip())
    return "\n".join(lines)


def settle(text: str, found: Review, what: str, previous: str, limit: int, counter) -> str:
    """The text kept from a (re-asked) proposal: a self-definition that still repeats itself
    is refused; a notebook keeps the first copy of what it repeats; dropped lines are put back
    (the oldest evicted only for room)."""
    if found.repeated or found.echoed:
        if what == "self-definition" and found.repeated:
            raise CheckFailed(f"the soul's self-definition repeats itself ({found.repeated[0]!r}) "
                              "even when asked again; nothing changed",
                              hint="try again with --guidance, or write it: soulctl notebook set --self")
        text = without_repeats(text)
    return restore(text, found, previous, limit, counter)


def checked(writer, counter, embedder, ask: list[dict], limit: int, what: str, previous: str,
            window: list[str], ids: list[str | None] | None = None) -> tuple[str, str, list[str], Review]:
    """A proposal from `writer` (counted by `counter`, the serving model), checked against the
    previous version: re-asked once when it drops lines or repeats itself, then settled; a
    notebook's new lines only where the window (`ids`: its packets) supports them (ground).
    Returns (text, notes for the reason, drafts kept for the log, the review)."""
    from soulctl.memory.rewrite import REWRITE_SLACK, write_within

    text, notes, drafts = write_within(writer, counter, ask, limit, what)
    found = review(previous, text, window, embedder)
    if found.faults():
        again = ask + [{"role": "assistant", "content": text},
                       {"role": "user", "content": reask_message(found, limit)}]
        if writer.count_chat_tokens(again) + limit + REWRITE_SLACK <= writer.context_length:
            second, more, more_drafts = write_within(writer, counter, again, limit, what)
            rechecked = review(previous, second, window, embedder)
            why = [f"dropped {len(found.dropped)}"] * bool(found.dropped) + \
                  ["repeated itself"] * bool(found.repeated or found.echoed)
            drafts += [text, *more_drafts]
            if len(rechecked.dropped) + 2 * len(rechecked.repeated) <= len(found.dropped) + 2 * len(found.repeated):
                text, found, notes = second, rechecked, notes + more
            found.reasked = why
    if what == "notebook":
        text = ground(text, previous, window, ids or [None] * len(window), embedder, found)
    return settle(text, found, what, previous, limit, counter), notes, drafts, found
