"""A reply as it is written: cut at stop strings, without the memory's markup, and stopped when
nobody reads it any more."""

from __future__ import annotations

import re


class TurnCancelled(Exception):
    """Raised by a turn's `on_token` when nobody is reading any more: generation stops, and
    the reply so far is logged marked partial."""


class StopCut:
    """A stream of pieces cut at the first stop string. What could still be the start of a
    stop string is held back until the next piece settles it, so no part of one is emitted."""

    def __init__(self, stops) -> None:
        self.stops = [s for s in stops or () if s]
        self.text, self.sent, self.stopped = "", 0, False

    def feed(self, piece: str) -> str:
        self.text += piece
        if self.stops:
            start = max(0, self.sent - max(map(len, self.stops)))
            found = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
            if found:
                self.text, self.stopped = self.text[:min(found)], True
                return self._emit(len(self.text))
            hold = max((k for s in self.stops for k in range(1, len(s)) if self.text.endswith(s[:k])), default=0)
            return self._emit(len(self.text) - hold)
        return self._emit(len(self.text))

    def flush(self) -> str:
        return self._emit(len(self.text))

    def _emit(self, upto: int) -> str:
        upto = max(upto, self.sent)
        out, self.sent = self.text[self.sent:upto], upto
        return out


# The retrieved sector's own markup (memory/retrieval.py, corpus/mounts.render_hit) and the
# system prompt's headings, as a model echoes them into its reply: never logged, never returned.
_MARK = re.compile(r"\[log\b[^\[\]\n]{0,60}\][ \t]?")
_HEADER = re.compile(r"^[ \t]*(?:\[[\w.-]{1,40}\] \S+:\d+(?:-\d+)?(?: \([^)\n]*\))?|# (?:Retrieved|Notebook|"
                     r"The client's instructions))[ \t]*$")
_CUT = re.compile(r"\s*\[(?:l(?:o(?:g\b[^\[\]\n]{0,60})?)?)?$")  # a tag the reply's end cut off
_HOLD = 80  # an open bracket held back this long at most, waiting for its end


def unmarked(text: str) -> str:
    """`text` without the memory's markup: `[log 2026-06-30 user]` tags wherever they are, and
    whole lines that are a corpus hit's header or a system prompt heading."""
    lines = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if _HEADER.match(body):
            continue
        cleaned = _MARK.sub("", body)
        if cleaned.strip() or not body.strip() or cleaned == body:
            lines.append(cleaned + line[len(body):])
    return "".join(lines)


def finished(text: str) -> str:
    """The whole reply's text, cleaned: `unmarked`, and a tag its end cut off unfinished taken out
    (`… a cup of coffee.\n\n[log 2026-0`, a reply that ran out of tokens)."""
    return _CUT.sub("", unmarked(text))


class Unmarked:
    """A stream of pieces without the memory's markup: what could still turn out to be markup
    (an open `[`, a line that starts like a header) is held back until it is settled."""

    def __init__(self) -> None:
        self.raw, self.sent = "", 0

    def feed(self, piece: str) -> str:
        self.raw += piece
        return self._emit(self._settled())

    def flush(self) -> str:
        return self._emit(len(self.raw), finished)

    def _settled(self) -> int:
        upto = len(self.raw)
        line_start = self.raw.rfind("\n") + 1
        if self.raw[line_start:].lstrip()[:1] in ("[", "#"):
            upto = line_start  # the line may be a header: wait for its end
        opened = self.raw.rfind("[")
        if opened >= 0 and "]" not in self.raw[opened:] and len(self.raw) - opened < _HOLD:
            upto = min(upto, opened)
        return upto

    def _emit(self, upto: int, clean_up=unmarked) -> str:
        clean = clean_up(self.raw[:upto])
        out = clean[self.sent:] if len(clean) >= self.sent else ""
        self.sent = max(self.sent, len(clean))
        return out


def generate(engine, messages: list[dict], max_tokens: int, sampling, stop, on_token) -> tuple[str, bool, str | None]:
    """A reply from `engine`: (text, ended at a stop string, why it was cut off or None), cut at
    `stop`, the memory's markup taken out, streamed to `on_token` when there is one."""
    if not on_token and not stop:
        return finished(engine.chat(messages, max_tokens, sampling)).strip(), False, None
    cut, clean, cancelled = StopCut(stop), Unmarked(), None
    pieces = engine.stream(messages, max_tokens, sampling)
    try:
        for piece in pieces:
            if (out := clean.feed(cut.feed(piece))) and on_token:
                on_token(out)
            if cut.stopped:
                break
        if (out := clean.feed(cut.flush()) + clean.flush()) and on_token:
            on_token(out)
    except TurnCancelled as exc:
        cancelled = str(exc) or "cancelled"
    finally:
        if close := getattr(pieces, "close", None):
            close()  # stops the model: a generator closed early ends its generation
    return finished(cut.text).strip(), cut.stopped, cancelled
