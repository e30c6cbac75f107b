"""Secrets kept out of what soulctl prints: URL passwords, bearer tokens, API keys, the values
of the variables that hold them."""

from soulctl.secrets import redact


def test_url_userinfo_keeps_the_user_and_hides_the_password():
    assert redact("cannot reach http://soul:hunter2@db.example.org:5432/soul") == \
        "cannot reach http://soul:***@db.example.org:5432/soul"
    assert redact("postgresql://me:p%40ss@host/db and https://a:b@c/d") == \
        "postgresql://me:***@host/db and https://a:***@c/d"
    assert redact("http://host/v1 has no password") == "http://host/v1 has no password"


def test_echoed_keys_and_tokens_are_hidden():
    echoed = "401: Incorrect API key provided: sk-live-0123456789abcdef (Authorization: Bearer abc.def-ghi)"
    assert redact(echoed) == "401: Incorrect API key provided: sk-*** (Authorization: Bearer ***)"
    assert redact("password=hunter2&user=x api_key: 'k3y'") == "password=***&user=x api_key: '***'"


def test_the_values_of_secret_variables_are_hidden_wherever_they_appear(monkeypatch):
    monkeypatch.setenv("SOULCTL_SERVE_TOKEN", "token-value-0123456789")
    monkeypatch.setenv("PGPASSWORD", "abc")  # too short to replace everywhere
    assert redact("the header was token-value-0123456789 (abc)") == "the header was *** (abc)"
