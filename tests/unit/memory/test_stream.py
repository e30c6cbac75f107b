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
