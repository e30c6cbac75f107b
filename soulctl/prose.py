"""Plain checks on a piece of prose the model wrote: its sentences, what it repeats, whether it
is boilerplate. Shared by the checked rewrites (memory/review.py), resonance (evolve/resonate.py)
and the benchmarks that measure loops."""

from __future__ import annotations

import re

SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
WORD = re.compile(r"\w+")
REPEAT_WORDS = 4  # a repeated sentence of at least this many words is a loop, not an idiom
SHORT_WORDS = 4  # a reply of fewer words says nothing worth learning
# what a small model says when it has nothing to say: apologies, refusals, excuses
BOILERPLATE = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|as an ai|as a language model|i (?:can ?not|can't|am unable to|"
    r"'m unable to|'m not able to) (?:help|assist|answer|respond|provide)|i was too busy|"
    r"i don'?t have (?:personal|access|the ability)|how can i (?:help|assist) you)", re.IGNORECASE)


def norm(text: str) -> str:
    return " ".join(WORD.findall(text.lower()))


ABBREVIATION = re.compile(r"(?:\b(?:Dr|Mr|Mrs|Ms|St|Prof|Jr|Sr|vs|etc|e\.g|i\.e|No|Mt)|\b[A-Z])\.$")


def split(line: str) -> list[str]:
    """One line's sentences (not cut after "Dr." or an initial)."""
    out: list[str] = []
    for piece in SENTENCE.split(line.strip()):
        if out and ABBREVIATION.search(out[-1]):
            out[-1] += " " + piece
        else:
            out.append(piece)
    return [s.strip() for s in out if s.strip()]


def sentences(text: str) -> list[str]:
    return [s for line in (text or "").splitlines() for s in split(line)]


def repeated(text: str) -> list[str]:
    """Sentences (of REPEAT_WORDS words or more) written more than once, each named once."""
    seen, out = set(), []
    for s in sentences(text):
        key = norm(s)
        if len(key.split()) >= REPEAT_WORDS:
            if key in seen and s not in out:
                out.append(s)
            seen.add(key)
    return out


def loops(text: str) -> bool:
    """The text repeats a sentence, or most of its 4-word phrases recur (a paragraph circling)."""
    if repeated(text):
        return True
    words = norm(text).split()
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    return len(grams) >= 24 and len(set(grams)) / len(grams) < 0.6


def flaws(text: str) -> list[str]:
    """Why a reply is not worth learning from, whatever its novelty: empty, short, repetitive,
    boilerplate (empty when none)."""
    words = norm(text).split()
    if not words or text.strip() == "(no reply)":
        return ["empty"]
    out = []
    if len(words) < SHORT_WORDS:
        out.append("short")
    if loops(text):
        out.append("repetitive")
    if BOILERPLATE.search(text) and len(words) < 60:
        out.append("boilerplate")
    return out
