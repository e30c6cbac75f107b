"""Who may see the console and act through it.

- **Host.** Every console request must name this server in its `Host` header: a loopback name
  (127.0.0.1, localhost, [::1]) or the address `serve` was bound to, with its port. A page on
  another site that re-points its own name at 127.0.0.1 (DNS rebinding) sends its own name,
  and is refused before anything of the soul is read.
- **Sign-in.** With a token set, a page shows nothing until the user signs in once with the
  token (a form POST, never a URL): the session is an HttpOnly, SameSite=Strict cookie, kept in
  the server's memory (a restart signs everyone out). Scripts may send `Authorization: Bearer`
  instead. Without a token the server is loopback-only (serve refuses otherwise), and the
  console opens without a sign-in.
- **Writes.** Every POST from a browser must come from this console (`Origin` naming this
  server) and carry the form's CSRF token, an HMAC of the session under a secret made at
  start-up. A POST with the bearer token is a script's and needs neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from urllib.parse import urlsplit

COOKIE = "soul_console"
SESSION_S = 12 * 3600  # a signed-in session lasts this long
MAX_SESSIONS = 256
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
OPEN = ("/login", "/static/console.css")  # shown before a sign-in: nothing of the soul


class Refusal(Exception):
    """A console request refused: its status and the one line that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Guard:
    def __init__(self, token: str | None, bound_host: str, port: int):
        self.token = token
        self.names = {name for name in LOOPBACK_NAMES} | {bound_host.strip("[]")}
        self.port = port
        self._secret = secrets.token_bytes(32)
        self._sessions: OrderedDict[str, float] = OrderedDict()  # session id -> when it lapses

    # -- every request --------------------------------------------------------------------------
    def check_host(self, headers: dict[bytes, bytes]) -> str:
        """The request's Host when it names this server; Refusal otherwise."""
        host = headers.get(b"host", b"").decode("latin-1")
        parts = urlsplit(f"//{host}")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.hostname is None or parts.hostname not in self.names or port not in (self.port, None):
            raise Refusal(421, f"this console answers to 127.0.0.1:{self.port} or localhost:{self.port}, "
                               f"not {host[:80] or 'no Host'}")
        return host

    def session_of(self, headers: dict[bytes, bytes]) -> str | None:
        """The signed-in session named by the request's cookie (None: none, or lapsed)."""
        sid = _cookie(headers.get(b"cookie", b"").decode("latin-1"), COOKIE)
        if sid is None:
            return None
        lapses = self._sessions.get(sid)
        if lapses is None or lapses < time.time():
            self._sessions.pop(sid, None)
            return None
        return sid

    def bearer(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"authorization", b"")
        return self.token is not None and hmac.compare_digest(given, f"Bearer {self.token}".encode())

    def admitted(self, headers: dict[bytes, bytes]) -> bool:
        """Whether the request may see the soul: no token set, the bearer, or a session."""
        return self.token is None or self.bearer(headers) or self.session_of(headers) is not None

    # -- signing in -----------------------------------------------------------------------------
    def sign_in(self, given: str) -> str | None:
        """A new session for the right token (None for a wrong one)."""
        if self.token is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = time.time() + SESSION_S
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return sid

    def sign_out(self, headers: dict[bytes, bytes]) -> None:
        if (sid := self.session_of(headers)) is not None:
            self._sessions.pop(sid, None)

    @staticmethod
    def cookie(sid: str) -> str:
        return f"{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_S}"

    # -- writes ---------------------------------------------------------------------------------
    def csrf(self, headers: dict[bytes, bytes]) -> str:
        """The CSRF token of the request's session (the open console's own when no token is set)."""
        sid = self.session_of(headers) or "open"
        return hmac.new(self._secret, sid.encode(), hashlib.sha256).hexdigest()

    def check_write(self, headers: dict[bytes, bytes], host: str, token: str | None) -> None:
        """A POST: from a script with the bearer token, or from this console's own page."""
        if self.bearer(headers):
            return
        origin = headers.get(b"origin", b"").decode("latin-1")
        if origin != f"http://{host}":
            raise Refusal(403, f"a write from {origin or 'a page that sent no Origin'} is refused: "
                               "only this console's own pages may act through it")
        if not token or not hmac.compare_digest(token, self.csrf(headers)):
            raise Refusal(403, "the form's CSRF token is missing or stale: reload the page and try again")


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None
