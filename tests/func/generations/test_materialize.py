"""A tampered generation file is restored by `gen materialize`, and chat notices the tampering."""

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


def test_materialize_restores_a_tampered_file_and_chat_notices(home):
    from conftest import flip_byte, unshare

    weights = home / "generations" / "gen-0000" / "model.safetensors"
    unshare(weights)
    flip_byte(weights, 4096)
    os.chmod(weights, 0o444)
    assert soulctl("gen", "verify", "--home", home).code == 1
    strict = soulctl("chat", "--strict", "--home", home, input="Hello\n")
    refused(strict, 1, "gen-0000 fails verification (modified model.safetensors)")
    assert soulctl("log", "ls", "-q", "--home", home).stdout == ""
    warned = soulctl("chat", "--home", home, input="Hello\n")
    assert warned.code == 0 and "warning: gen-0000 fails verification" in warned.stderr, warned
    result = soulctl("gen", "materialize", "gen-0000", "--json", "--home", home)
    assert result.code == 0, result
    assert result.json()["restored"] == ["model.safetensors"]
    assert soulctl("gen", "verify", "--home", home).code == 0
