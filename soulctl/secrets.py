"""Secrets kept out of what soulctl prints and logs: the password in a URL, a bearer token or
API key that a server echoes back, the values of the environment variables that hold them.

Every error line, warning and log record passes through `redact` (cli/output.py, the logging
filter the CLI installs, the server's error bodies), so no code path has to remember to.
"""

from __future__ import annotations

import logging
import os
import re

# the environment variables whose values are secrets wherever they appear
SECRET_ENVS = ("SOULCTL_SERVE_TOKEN", "SOULCTL_BUNDLE_KEY", "SOULCTL_API_KEY", "OPENAI_API_KEY",
               "ANTHROPIC_API_KEY", "PGPASSWORD")
MIN_SECRET = 6  # shorter values are too common to replace wherever they occur

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/\s:@]*):[^/\s@]*@")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
_KEYS = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_-]{6,}")
_ASSIGNED = re.compile(r"(?i)\b(password|passwd|api[_-]?key|token|secret)(\s*[=:]\s*[\"']?)([^\s\"'&,;]+)")


def _plain_word(separator: str, value: str) -> bool:
    """A word of prose after "token: " ("without a token: anyone who…"), not a secret: a
    colon and a space, then a short word of lowercase letters. `token=x` always counts."""
    return separator.strip() == ":" and separator.endswith(" ") and len(value) < 12 and value.isalpha() \
        and value.islower()


def redact(text: str) -> str:
    """`text` without the secrets it may hold."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _BEARER.sub(r"\1***", text)
    text = _KEYS.sub(lambda m: f"{m.group(1)}-***", text)
    text = _ASSIGNED.sub(lambda m: m.group(0) if _plain_word(m.group(2), m.group(3))
                         else f"{m.group(1)}{m.group(2)}***", text)
    for name in SECRET_ENVS:
        value = os.environ.get(name, "").strip()
        if len(value) >= MIN_SECRET:
            text = text.replace(value, "***")
    return text


class RedactingFilter(logging.Filter):
    """A handler filter: the record's whole text (its traceback too) redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = redact(message), ()
        return True
