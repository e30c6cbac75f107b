"""The coding agent runs in an allowlisted environment: it sees none of soulctl's secrets."""

from __future__ import annotations
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
import pytest
from conftest import BASE_ENV, REPO, copy_home, refused, soulctl


SECRETS = {"SOULCTL_SERVE_TOKEN": "serve-token-0123456789abcdef", "SOULCTL_BUNDLE_KEY": "ab" * 32,
           "PGPASSWORD": "pg-secret-pass", "OPENAI_API_KEY": "sk-openai-secret-key-123",
           "SOULCTL_API_KEY": "soul-api-key-0123456789"}


def set_hands(home: Path, **values) -> None:
    import yaml

    data = yaml.safe_load((home / "soul.yaml").read_text())
    data["hands"].update(values)
    (home / "soul.yaml").write_text(yaml.safe_dump(data))


def test_the_coding_agent_sees_none_of_soulctls_secrets(home, tmp_path):
    standin = REPO / "tests" / "func" / "standin"
    python = tmp_path / "bin"  # the stand-in's `python3` without a launcher that adds variables (pyenv)
    python.mkdir()
    (python / "python3").symlink_to(sys.executable)
    set_hands(home, env=["ANTHROPIC_*", "STANDIN_CLAUDE"])
    env = {**SECRETS, "ANTHROPIC_API_KEY": "sk-ant-agent-key", "STANDIN_CLAUDE": "env",
           "PATH": os.pathsep.join([str(standin), str(python), os.environ["PATH"]])}
    result = soulctl("hands", "Show your environment", "--cwd", tmp_path, "--home", home, env=env)
    assert result.code == 0, result
    seen = json.loads((tmp_path / ".standin-env.json").read_text())
    assert not set(SECRETS) & set(seen), sorted(seen)
    assert not any(value in json.dumps(seen) for value in SECRETS.values())
    assert seen["ANTHROPIC_API_KEY"] == "sk-ant-agent-key" and seen["HOME"] and seen["PATH"]
    allowed = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR",
               "COLORTERM", "NO_COLOR", "ANTHROPIC_API_KEY", "STANDIN_CLAUDE"}
    assert set(seen) - allowed <= {k for k in seen if k.startswith("LC_")} | {"PWD", "SHLVL", "_"}, sorted(seen)
    # naming soulctl's own secret for the agent is refused in soul.yaml itself
    set_hands(home, env=["SOULCTL_SERVE_TOKEN"])
    refused(soulctl("hands", "x", "--cwd", tmp_path, "--home", home, env=env), 5, "never handed to the agent")
