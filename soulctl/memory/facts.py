"""What the user states, the soul keeps, in the user's words.

A user's turn that states something about them or their world ("My dog is a beagle called
Biscuit.", "Ines lives in Tromsø.", "The deadline is 3 March.") goes into the notebook as it
is written, the moment it is logged — not at the next pressure, and never reworded by a model —
each line citing its packet: `- the user, 2026-12-07: "Ines lives in Tromsø." [log <id>]`.
A correction ("Actually, Ines moved to Bergen.") supersedes the line on the same subject it
changes; the superseded line stays in the notebook's history and its packet in the log. When
the notebook is full, the oldest captured lines make room (their packets are still in the log).

What counts as stated is read by rules, not a model: a sentence that is not a question, a
request, small talk or an opinion, that relates a subject to something ("is", "lives",
"moved", "works", "turns" …), and is about the user (I, my, our) or names something specific
(a name, a number, a date), or that the user asks to be remembered. Imported history is memory
to search, never captured: only a live turn is (memory/session.py).
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from soulctl.memory.review import CHANGE, specifics
from soulctl.prose import WORD, norm, split

if TYPE_CHECKING:
    from soulctl.soul import Soul

log = logging.getLogger(__name__)

MIN_WORDS = 3
SAME = 0.45  # a correction supersedes the most similar line on its subject, at least this close

_I = re.IGNORECASE
_QUESTION = re.compile(r"^(what|who|whom|whose|where|when|why|how|which|do|does|did|don't|can|could|would|"
                       r"will|is|are|am|was|were|should|shall|may|might|have|has|had|isn't|aren't)\b", _I)
_SMALL_TALK = re.compile(r"^(hi|hello|hey|hiya|thanks|thank you|cheers|good (morning|night|evening|afternoon)|"
                         r"ok|okay|sure|yes|yeah|yep|no|nope|lol|haha\w*|bye|goodbye|see you|nice|cool|great|"
                         r"wow|oh|ah|hmm|sorry|fair enough|never mind|anyway)\b", _I)
_OPINION = re.compile(r"\b(i think|i feel|i guess|i suppose|i believe|i reckon|in my opinion|i wonder|i hope|"
                      r"i wish|maybe|probably|perhaps|honestly|seems?|seemed|i'd say|kind of|sort of|not sure|"
                      r"overrated|underrated|should be|ought to)\b", _I)
_REQUEST = re.compile(r"^(please|tell|let's|let me|can you|could you|would you|write|give|show|help|explain|"
                      r"describe|summari[sz]e|imagine|pretend|say|list|remind|translate|find|make)\b", _I)
_REMEMBER = re.compile(r"^(please\s+)?(remember|note|keep in mind|for the record|fyi|just so you know)\b"
                       r"(\s+that)?[:,]?\s*", _I)
_SELF = re.compile(r"^(i|i'm|i’m|i've|we|we're|we've|my|our)\b", _I)
_RELATION = re.compile(
    r"\b(is|are|was|were|am|'m|’m|'re|’re|lives?|lived|living|moved|moves|moving|works?|worked|working|"
    r"turns|turned|has|have|had|called|named|born|got|gets|left|leaves|joined|joins|stud(?:y|ies|ied)|"
    r"started|starts|owns?|owned|married|teach(?:es)?|plays?|runs?|drives?|speaks?|prefers?|allergic|"
    r"hates?|loves?|likes?|enjoys?|due|expires?|begins?|ends?|costs?|weighs?|uses?|visit(?:s|ed)?|lost|"
    r"bought|sold|adopted|retired|graduated|grew up|stays?|keeps?|parks?|eats?|drinks?|need|needs|"
    r"goes|flies|flying|arrives?|leaving)\b", _I)
# how one is, not what is so: a passing state or a judgement, unless something specific is named
_PASSING = re.compile(r"\b(tired|hungry|bored|busy|sleepy|fine|happy|sad|excited|stressed|awful|great|terrible|"
                      r"brilliant|amazing|boring|nice|lovely|fun|good|bad|weird|funny|cool|wonderful|"
                      r"horrible|exhausting|exhausted|beautiful|interesting|annoying|glad|sure|okay|ok|hectic|crazy|rough|"
                      r"mad|long|slow|quiet)\b", _I)
_MARKER = re.compile(r"^((actually|oh|so|well|by the way|btw|also|and|but|anyway|update|correction|"
                     r"just so you know|for the record|fyi)[,:]?\s+)+", _I)
_LABEL = re.compile(r"^[\w' ]{1,24}:\s+")  # "Turn 3: tell me …", "Q: …"
_FIX = re.compile(r"\b(actually|correction|i meant|i was wrong|turns out|not any ?more)\b", _I)
_MONTH = re.compile(r"\b(jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(tember)?|"
                    r"oct(ober)?|nov(ember)?|dec(ember)?|monday|tuesday|wednesday|thursday|friday|"
                    r"saturday|sunday)\b", _I)
_CITES = re.compile(r"\[log ([0-9a-f-]{8,})\]")  # a line's source: `[log <packet id>]`
_CITE = re.compile(_CITES.pattern + r"\s*$")  # ... at the line's end


def stated(text: str) -> list[str]:
    """The sentences of a user's turn that state a fact, verbatim."""
    return [s for line in (text or "").splitlines() for s in split(line) if _states(s)]


def _states(sentence: str) -> bool:
    s = sentence.strip()
    words = WORD.findall(s)
    if len(words) < MIN_WORDS or s.endswith("?") or "?" in s:
        return False
    asked_to_keep = bool(_REMEMBER.match(s))
    body = _MARKER.sub("", _REMEMBER.sub("", _LABEL.sub("", s))).strip()
    if not body or _QUESTION.match(body) or _OPINION.search(body):
        return False
    if _REQUEST.match(body) and not asked_to_keep:
        return False
    if _SMALL_TALK.match(body) and not _specific(body):
        return False
    if not _RELATION.search(body) and not _SELF.match(body):
        return False
    if _PASSING.search(body) and not _specific(body) and not asked_to_keep:
        return False
    return asked_to_keep or bool(_SELF.match(body)) or _specific(body)


def _specific(sentence: str) -> bool:
    """A name, a number or a date: what makes a statement a fact rather than talk."""
    first = _MARKER.sub("", sentence.strip())
    named = WORD.match(first) and first[:1].isupper() and not _SELF.match(first) and \
        WORD.match(first).group(0).lower() not in _STARTERS
    return bool(specifics(sentence)) or bool(named) or bool(_MONTH.search(sentence))


_STARTERS = frozenset("the a an this that these those it its there here he she they we you his her their "
                      "today tomorrow yesterday tonight everyone someone nobody".split())


def subject(sentence: str) -> str:
    """What a statement is about: its words before the relating verb ("Ines", "my sister Ines",
    "my dog", "deadline for grant"), without articles and opening markers."""
    body = _MARKER.sub("", _REMEMBER.sub("", sentence.strip()))
    verb = _RELATION.search(body)
    head = body[:verb.start()] if verb else body
    return " ".join(w for w in WORD.findall(head) if w.lower() not in ("the", "a", "an", "now", "also"))


def _same(a: str, b: str) -> bool:
    """Two subjects are one when they share a name ("my sister Ines", "Ines"), or, naming no
    one, are the same words ("my dog")."""
    names = [{w.lower() for w in WORD.findall(x) if w[:1].isupper() and w.lower() not in _STARTERS | {"i", "my", "our"}}
             for x in (a, b)]
    if names[0] or names[1]:
        return bool(names[0] & names[1])
    return a.lower() == b.lower()


@dataclass
class Captured:
    """What one turn's capture did to the notebook."""

    added: list[str] = field(default_factory=list)
    superseded: list[dict] = field(default_factory=list)  # {"line", "by"}
    evicted: list[str] = field(default_factory=list)
    version: int | None = None

    def as_review(self) -> dict:
        return {"captured": self.added, "superseded": self.superseded, "evicted": self.evicted}


def cited(notebook: str) -> list[str]:
    """The packets a notebook's lines cite (`[log <id>]`), in its order."""
    return _CITES.findall(notebook or "")


def line_for(fact: str, packet_id: str, when: _dt.date) -> str:
    return f'- the user, {when.isoformat()}: "{fact}" [log {packet_id}]'


def capture(soul: Soul, text: str, packet_id: str, when: _dt.date | None = None, limit: int | None = None,
            counter=None) -> Captured:
    """Each fact `text` states, into the notebook in the user's words, citing `packet_id`: a
    new version (author `user`, the words being theirs) when anything changed."""
    from soulctl.memory import notebook as nb

    found = Captured()
    facts = stated(text)
    if not facts:
        return found
    when = when or _dt.datetime.now(_dt.timezone.utc).date()
    old = nb.current(soul, "notebook")["text"]
    lines = old.splitlines()
    for fact in facts:
        if _quoted(lines, fact):
            continue  # said before, kept before
        if (gone := _superseded(soul, lines, fact)) is not None:
            found.superseded.append({"line": lines[gone], "by": fact})
            del lines[gone]
        lines.append(line_for(fact, packet_id, when))
        found.added.append(fact)
    if not found.added:
        return found
    if limit is not None and counter is not None:
        while counter.count_tokens("\n".join(lines)) > limit and (oldest := _oldest_captured(lines)) is not None:
            found.evicted.append(lines.pop(oldest))
    reason = f"captured {len(found.added)} stated fact(s) from {packet_id}" + \
        (f"; superseded {len(found.superseded)}" if found.superseded else "") + \
        (f"; evicted {len(found.evicted)} for room" if found.evicted else "")
    found.version = nb.write(soul, "notebook", "\n".join(lines).strip(), "user", reason, found.as_review())
    return found


def _quoted(lines: list[str], fact: str) -> bool:
    key = norm(fact)
    return any(norm(_quote_of(line)) == key for line in lines)


def _quote_of(line: str) -> str:
    m = re.search(r'"(.*)"', line)
    return m.group(1) if m else line


def _superseded(soul: Soul, lines: list[str], fact: str) -> int | None:
    """The index of the notebook line `fact` corrects: one on the same subject, the most
    similar, when the fact says something changed ("moved", "now", "actually" …)."""
    if not (CHANGE.search(fact) or _FIX.search(fact)):
        return None
    about = subject(fact)
    if not about:
        return None
    same = [i for i, line in enumerate(lines) if line.strip() and _same(subject(_quote_of(_CITE.sub("", line))), about)]
    if not same:
        return None
    vectors = soul.embedder.encode([fact] + [_quote_of(_CITE.sub("", lines[i])) for i in same])
    sims = vectors[1:] @ vectors[0]
    best = int(sims.argmax())
    return same[best] if float(sims[best]) >= SAME else None


def _oldest_captured(lines: list[str]) -> int | None:
    return next((i for i, line in enumerate(lines) if _CITE.search(line) and line.lstrip().startswith("- the user")),
                None)


def keep_stated(chat, user_text: str, packet_id: str) -> None:
    """A chat turn's capture (`memory.capture`): what the user stated, into the notebook in their
    words, citing the packet; a capture that fails is told, and the turn goes on."""
    from soulctl.errors import SoulError

    if not chat.mem.capture:
        return
    try:
        found = capture(chat.soul, user_text, packet_id, limit=chat.mem.notebook_tokens, counter=chat.engine)
    except SoulError as exc:
        log.warning("the notebook did not keep what was stated: %s", exc.message)
        return
    if found.version is not None:
        chat._say(f"notebook v{found.version}: kept {len(found.added)} stated fact(s)"
                  + (f", superseding {len(found.superseded)}" if found.superseded else ""))
