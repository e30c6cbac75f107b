"""A reply as it is written: cut at stop strings, and stopped when nobody reads it any more."""

from __future__ import annotations


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
