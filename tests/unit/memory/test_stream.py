"""Stop strings cut a stream without leaking a prefix."""

from __future__ import annotations


def test_stop_strings_cut_a_stream_without_leaking_a_prefix():
    from soulctl.memory.stream import StopCut

    cut = StopCut(["END", "\n\n"])
    sent = [cut.feed(p) for p in ["Hel", "lo E", "N", "Dmore"]]
    assert "".join(sent) == "Hello " and cut.stopped and cut.text == "Hello "
    assert sent[1] == "lo "  # "E" held back: it might begin END
    cut = StopCut(["END"])
    assert "".join(cut.feed(p) for p in ["Hello E", "NX"]) + cut.flush() == "Hello ENX" and not cut.stopped
    cut = StopCut([])
    assert cut.feed("a") + cut.feed("b") == "ab"
    cut = StopCut(["\n\n"])
    assert cut.feed("one\n") == "one" and cut.feed("\ntwo") == "" and cut.stopped and cut.text == "one"


def test_the_memorys_markup_never_reaches_a_reply_whole_or_streamed():
    import random

    from soulctl.memory.stream import Unmarked, unmarked

    reply = ("Sure.\n[log 2019-06-30 user] my dog is Biscuit\nHe is a [log 2026-01-01 soul] beagle.\n"
             "[notes] plans.md:1-20 (Trips)\n# Retrieved\nSee [1] and [the list] too.\n")
    clean = unmarked(reply)
    assert clean == "Sure.\nmy dog is Biscuit\nHe is a beagle.\nSee [1] and [the list] too.\n"
    assert unmarked("Plain words, [brackets] kept.") == "Plain words, [brackets] kept."
    rng = random.Random(7)
    for _ in range(300):  # any cut of the stream into pieces gives the same text, nothing leaked early
        stream, sent, at = Unmarked(), [], 0
        while at < len(reply):
            n = rng.randint(1, 7)
            sent.append(stream.feed(reply[at:at + n]))
            at += n
        sent.append(stream.flush())
        assert "".join(sent) == clean and not any("[log" in piece for piece in sent)


def test_a_tag_the_replys_end_cut_off_is_taken_out_too():
    from soulctl.memory.stream import Unmarked, finished

    for cut in ("I have coffee.\n\n[log", "I have coffee. [log 2026-0", "I have coffee. [l", "I have coffee. ["):
        assert finished(cut) == "I have coffee.", cut
        stream = Unmarked()
        assert ("".join(stream.feed(piece) for piece in cut.split(" ")[:1]) + "".join(
            stream.feed(" " + piece) for piece in cut.split(" ")[1:]) + stream.flush()).rstrip() == "I have coffee.", cut
    assert finished("See [1] and [the list].") == "See [1] and [the list]."
