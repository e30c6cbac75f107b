"""The console's guard (serve/console/guard.py): Host, sign-in, Origin and CSRF, without a server."""

from __future__ import annotations

import time

import pytest

from soulctl.serve.console import guard as guard_module
from soulctl.serve.console import is_console_path
from soulctl.serve.console.guard import Guard, Refusal

TOKEN = "a-token-of-thirty-two-characters"


def headers(**given: str) -> dict[bytes, bytes]:
    return {k.replace("_", "-").encode(): v.encode() for k, v in given.items()}


def test_only_this_servers_names_are_answered():
    g = Guard(None, "127.0.0.1", 8710)
    for host in ("127.0.0.1:8710", "localhost:8710", "[::1]:8710", "127.0.0.1", "localhost"):
        assert g.check_host(headers(host=host)) == host
    for host in ("evil.example:8710", "evil.example", "127.0.0.1:8711", "127.0.0.1.nip.io:8710", "",
                 "localhost:notaport", "127.0.0.1:8710@evil.example"):
        with pytest.raises(Refusal) as refused:
            g.check_host(headers(host=host))
        assert refused.value.status == 421
    with pytest.raises(Refusal):
        g.check_host({})
    assert Guard(TOKEN, "192.168.1.20", 8710).check_host(headers(host="192.168.1.20:8710"))


def test_without_a_token_the_console_is_open_and_with_one_it_needs_a_session():
    assert Guard(None, "127.0.0.1", 1).admitted({})
    g = Guard(TOKEN, "127.0.0.1", 1)
    assert not g.admitted({}) and not g.admitted(headers(cookie="soul_console=forged"))
    assert g.sign_in("wrong") is None and g.sign_in(TOKEN[:-1]) is None and g.sign_in("") is None
    sid = g.sign_in(TOKEN)
    assert sid and TOKEN not in sid
    assert g.admitted(headers(cookie=f"other=1; soul_console={sid}"))
    assert g.admitted(headers(authorization=f"Bearer {TOKEN}"))
    assert not g.admitted(headers(authorization=f"Bearer {TOKEN}x"))
    cookie = g.cookie(sid)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    g.sign_out(headers(cookie=f"soul_console={sid}"))
    assert not g.admitted(headers(cookie=f"soul_console={sid}"))
    assert Guard(None, "127.0.0.1", 1).sign_in(TOKEN) is None  # no token: nothing to sign in with


def test_a_session_lapses(monkeypatch):
    g = Guard(TOKEN, "127.0.0.1", 1)
    sid = g.sign_in(TOKEN)
    later = time.time() + guard_module.SESSION_S + 1
    monkeypatch.setattr(guard_module.time, "time", lambda: later)
    assert not g.admitted(headers(cookie=f"soul_console={sid}"))


def test_sessions_are_bounded(monkeypatch):
    monkeypatch.setattr(guard_module, "MAX_SESSIONS", 3)
    g = Guard(TOKEN, "127.0.0.1", 1)
    sids = [g.sign_in(TOKEN) for _ in range(5)]
    assert [g.session_of(headers(cookie=f"soul_console={s}")) is not None for s in sids] == [False, False, True, True, True]


def test_a_write_needs_this_origin_and_the_sessions_csrf():
    g = Guard(TOKEN, "127.0.0.1", 8710)
    sid = g.sign_in(TOKEN)
    mine = headers(cookie=f"soul_console={sid}", origin="http://127.0.0.1:8710")
    csrf = g.csrf(mine)
    g.check_write(mine, "127.0.0.1:8710", csrf)
    for origin in ("http://evil.example", "null", "http://127.0.0.1:8711", "https://127.0.0.1:8710"):
        with pytest.raises(Refusal) as refused:
            g.check_write(headers(cookie=f"soul_console={sid}", origin=origin), "127.0.0.1:8710", csrf)
        assert refused.value.status == 403
    with pytest.raises(Refusal):
        g.check_write(headers(cookie=f"soul_console={sid}"), "127.0.0.1:8710", csrf)  # no Origin
    for token in (None, "", "0" * 64, csrf[:-1]):
        with pytest.raises(Refusal, match="CSRF"):
            g.check_write(mine, "127.0.0.1:8710", token)
    other = g.sign_in(TOKEN)
    assert g.csrf(headers(cookie=f"soul_console={other}")) != csrf  # one session's token is not another's
    assert Guard(TOKEN, "127.0.0.1", 8710).csrf(mine) != csrf  # nor another server's
    g.check_write(headers(authorization=f"Bearer {TOKEN}"), "127.0.0.1:8710", None)  # a script


def test_the_console_owns_every_path_but_the_apis():
    assert all(is_console_path(p) for p in ("/", "/lineage", "/memory", "/v1x", "/mcpanel", "/login"))
    assert not any(is_console_path(p) for p in ("/v1", "/v1/models", "/mcp", "/mcp/x", "/health"))
