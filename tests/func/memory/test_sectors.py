"""The Memory OS's sectors against the context: a sector that cannot fit, or sectors larger than
the context, are refused; a refused message changes nothing."""

from __future__ import annotations
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import pytest
from conftest import BASE_ENV, REPO, refused, soulctl


def fingerprint(home) -> tuple:
    """What must not change when a command is refused: the database's bytes and its counts."""
    db = home / "data" / "soul.duckdb"
    digest = hashlib.sha256(db.read_bytes()).hexdigest() if db.exists() else None
    counts = soulctl("log", "sql", "SELECT (SELECT count(*) FROM packets) AS p, "
                     "(SELECT count(*) FROM resonance_marks) AS m, "
                     "(SELECT count(*) FROM memory_versions) AS v", "--json", "--home", home).json()
    return digest, counts


def configure(home, context=None, **memory):
    import yaml

    path = home / "soul.yaml"
    data = yaml.safe_load(path.read_text())
    data["memory"].update(memory)
    if context:
        data["roles"]["soul"]["context"] = context
    path.write_text(yaml.safe_dump(data))


def test_a_sector_that_cannot_fit_is_refused(home):
    huge = "You are the soul of this machine and you remember every river. " * 1000
    before = fingerprint(home) if (home / "data" / "soul.duckdb").exists() else None
    refused(soulctl("notebook", "set", "--self", "--home", home, input=huge), 5,
            "its sector holds 1024 (memory.self_tokens)")
    refused(soulctl("notebook", "set", "--home", home, input=huge), 5, "(memory.notebook_tokens)")
    if before:
        assert fingerprint(home) == before
    assert soulctl("notebook", "history", "--self", "--json", "--home", home).json_lines() == []
    forced = soulctl("notebook", "set", "--self", "--force", "--json", "--home", home, input=huge)
    assert forced.code == 0, forced
    record = soulctl("notebook", "history", "--self", "--json", "--home", home).json_lines()[0]
    assert "trimmed from" in record["reason"] and "to 1024 tokens (--force)" in record["reason"]
    assert record["chars"] < len(huge) // 10
    # a self-definition over its (since lowered) sector: a turn names it and its fix
    configure(home, context=1024, self_tokens=128, notebook_tokens=128, retrieved_tokens=0,
              window_tokens=256, reply_tokens=64)
    refused(soulctl("chat", "--home", home, input="Hello\n"), 5,
            "the self-definition is 10")
    assert "over its sector of 128" in soulctl("chat", "--home", home, input="Hello\n").stderr


def test_a_refused_message_changes_nothing(home):
    configure(home, context=1024, self_tokens=128, notebook_tokens=96, retrieved_tokens=0,
              window_tokens=256, reply_tokens=32)
    assert soulctl("chat", "--session", "s", "--home", home, input="Tell me about herons.\n").code == 0
    before = fingerprint(home)
    long_message = "Please remember every one of these rivers and their mouths. " * 120
    refused(soulctl("chat", "--session", "s", "--home", home, input=long_message), 5,
            "send a shorter message")
    assert fingerprint(home) == before  # no notebook rewrite, no flush, no packet


def test_sectors_larger_than_the_context_are_refused(home):
    configure(home, context=2048, window_tokens=4096)
    refused(soulctl("chat", "--home", home, input="Hello\n"), 5,
            "the Memory OS sectors need 8704 tokens (self 1024 + notebook 2048 + retrieved 1024 + "
            "window 4096 + reply 512) but the model's context is 2048")
    refused(soulctl("budget", "--ctx", "0"), 2, "--ctx")
