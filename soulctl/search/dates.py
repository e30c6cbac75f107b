"""Dates in questions and in what was said, without a model.

A question may name a day or a month ("on 14 June", "June 14th", "on the 14th of June", "in
May", "during May 2026", "2026-05-14"); `query_span` turns that into a Span. A packet says its
dates the way people do, relative to when it was said ("yesterday", "two days ago", "last
Saturday", "on Friday", "tomorrow", "on the 14th", "on the 20th of April"); `mentioned` resolves
them against the packet's own timestamp. A day whose direction the words leave open ("on
Friday") resolves both ways, the last one and the next one: a boost may be generous, a filter
would not be.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december"]
_SHORT = {m[:3]: i for i, m in enumerate(MONTHS, 1)} | {"sept": 9}
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_NUMBERS = {w: i for i, w in enumerate("one two three four five six seven eight nine ten".split(), 1)}
_MONTH = r"(january|february|march|april|may|june|july|august|september|october|november|december|" \
         r"jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(\d{4}))?"

# How far from the day a packet says it may have been written: a day mentioned as past
# ("two days ago", "last Saturday") is at most a week behind its packet, a planned one
# ("on the 14th of June", said in April) up to ten weeks ahead.
SAID_AFTER = dt.timedelta(days=8)
SAID_BEFORE = dt.timedelta(days=70)


@dataclass(frozen=True)
class Span:
    """A day or a month a question names; `year` None when it names none (any year)."""

    month: int
    day: int | None = None
    year: int | None = None

    def holds(self, date: dt.date) -> bool:
        return (date.month == self.month and (self.day is None or date.day == self.day)
                and (self.year is None or date.year == self.year))

    def ranges(self, first: dt.date, last: dt.date) -> list[tuple[dt.date, dt.date]]:
        """The span's own days in each year from `first` to `last` (the log's dates)."""
        years = [self.year] if self.year else range(first.year, last.year + 1)
        out = []
        for year in years:
            start = dt.date(year, self.month, self.day or 1)
            end = start if self.day else (dt.date(year + self.month // 12, self.month % 12 + 1, 1)
                                          - dt.timedelta(days=1))
            out.append((start, end))
        return out


def _month(word: str) -> int:
    word = word.lower().rstrip(".")
    return MONTHS.index(word) + 1 if word in MONTHS else _SHORT[word[:4] if word.startswith("sept") else word[:3]]


def _valid(year: int, month: int, day: int) -> bool:
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True


def query_span(text: str) -> Span | None:
    """The day or month a question names, or None. A month alone counts only after a
    preposition ("in May", "during May", "last May"), so "may" the verb is not a date."""
    low = text.lower()
    if m := re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", low):
        year, month, day = map(int, m.groups())
        return Span(month, day, year) if _valid(year, month, day) else None
    if m := re.search(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}{_YEAR}\b", low):
        day, month, year = int(m.group(1)), _month(m.group(2)), m.group(3)
        if _valid(int(year or 2000), month, day):
            return Span(month, day, int(year) if year else None)
    if m := re.search(rf"\b{_MONTH}\s+{_DAY}\b{_YEAR}", low):
        month, day, year = _month(m.group(1)), int(m.group(2)), m.group(3)
        if _valid(int(year or 2000), month, day):
            return Span(month, day, int(year) if year else None)
    if m := re.search(rf"\b(?:in|during|of|last|this|early|late|mid|since|until|by)(?:-|\s+)(?:the\s+)?{_MONTH}{_YEAR}\b", low):
        month, year = _month(m.group(1)), m.group(2)
        return Span(month, None, int(year) if year else None)
    return None


_PAST = re.compile(r"\b(got|was|were|went|ran|saw|had|did|finished|bought|flew|came|made|took|"
                   r"met|said|told|visited|ate|left|arrived|called|ago|last|yesterday)\b")
_AHEAD = re.compile(r"\b(will|'ll|going to|gonna|'re|are|is|next|tomorrow|plan|planning|invited)\b")


def mentioned(prose: str, said: dt.date) -> set[dt.date]:
    """The days `prose`, written on `said`, talks about (relative words resolved)."""
    low = prose.lower()
    out: set[dt.date] = set()
    past, ahead = bool(_PAST.search(low)), bool(_AHEAD.search(low))
    if re.search(r"\b(today|tonight|this (morning|afternoon|evening))\b", low):
        out.add(said)
    if "yesterday" in low:
        out.add(said - dt.timedelta(days=1))
    if "tomorrow" in low:
        out.add(said + dt.timedelta(days=1))
    for m in re.finditer(r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|a)\s+(day|week)s?\s+ago\b", low):
        n = 1 if m.group(1) == "a" else _NUMBERS.get(m.group(1)) or int(m.group(1))
        out.add(said - dt.timedelta(days=n * (7 if m.group(2) == "week" else 1)))
    for m in re.finditer(r"\b(last|next|this|on)\s+(monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?\b", low):
        weekday = WEEKDAYS.index(m.group(2))
        back = said - dt.timedelta(days=(said.weekday() - weekday) % 7 or 7)
        forth = said + dt.timedelta(days=(weekday - said.weekday()) % 7 or 7)
        if m.group(1) == "last":
            out.add(back)
        elif m.group(1) == "next":
            out |= {forth, forth + dt.timedelta(days=7)}
        else:
            out |= ({back} if past or not ahead else set()) | ({forth} if ahead or not past else set())
    for m in re.finditer(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}{_YEAR}|\b{_MONTH}\s+{_DAY}\b{_YEAR}", low):
        if m.group(1):
            day, month, year = int(m.group(1)), _month(m.group(2)), m.group(3)
        else:
            month, day, year = _month(m.group(4)), int(m.group(5)), m.group(6)
        for y in ([int(year)] if year else [said.year - 1, said.year, said.year + 1]):
            if _valid(y, month, day):
                date = dt.date(y, month, day)
                if year or -SAID_BEFORE <= date - said <= SAID_BEFORE:
                    out.add(date)
    for m in re.finditer(r"\bthe\s+(\d{1,2})(?:st|nd|rd|th)\b(?!\s+(?:of\s+)?[a-z]+\s)", low):
        day = int(m.group(1))
        for shift in (-1, 0, 1):
            year, month = said.year + (said.month + shift - 1) // 12, (said.month + shift - 1) % 12 + 1
            if _valid(year, month, day) and abs((dt.date(year, month, day) - said).days) <= 31:
                out.add(dt.date(year, month, day))
    return out


def in_span(span: Span, prose: str, said: dt.date) -> int:
    """2 when the packet talks about a day in the span; 1 when it names no day and was written
    in the span; else 0 (a packet written in May about a day in April is April's)."""
    days = mentioned(prose, said)
    if days:
        return 2 if any(span.holds(d) for d in days) else 0
    return 1 if span.holds(said) else 0


def windows(span: Span, first: dt.date, last: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
    """When a packet about the span may have been written: each of its ranges widened by how
    far ahead or behind people say dates, as UTC datetimes for a store's since/until."""
    out = []
    for start, end in span.ranges(first, last):
        lo = dt.datetime.combine(start - SAID_BEFORE, dt.time.min, dt.timezone.utc)
        hi = dt.datetime.combine(end + SAID_AFTER, dt.time.max, dt.timezone.utc)
        out.append((lo, hi))
    return out
