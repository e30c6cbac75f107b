"""JSON from outside: invalid, too deep, or holding text that is not text — one refusal each,
naming where."""

import pytest

from soulctl.jsontext import MAX_DEPTH, BadJSON, check, loads


def test_a_lone_surrogate_is_named_by_its_path():
    with pytest.raises(BadJSON) as err:
        loads('{"messages": [{"role": "user", "content": "a\\ud800b"}]}', "the body")
    assert err.value.param == "messages[0].content" and "lone UTF-16 surrogate" in err.value.message
    with pytest.raises(BadJSON) as err:
        check({"k\ud800": 1}, "line 3")
    assert err.value.message.startswith("line 3: a key")
    assert loads('{"pair": "\\ud83d\\ude00"}') == {"pair": "😀"}  # a valid pair is text


def test_nesting_is_bounded_however_deep():
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    for depth in (MAX_DEPTH + 1, 50_000):
        with pytest.raises(BadJSON, match="nested more than"):
            loads("[" * depth + "]" * depth, "the body")


def test_invalid_json_is_one_line():
    with pytest.raises(BadJSON, match=r"^the body is not valid JSON \(Expecting value\)$"):
        loads(b"{\"a\": }", "the body")
