"""Bearer tokens: from the environment held to a token file's rules, a token file others can read refused."""

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


def test_an_env_token_is_held_to_the_files_length(home):
    refused(soulctl("serve", "--host", "0.0.0.0", "--port", "0", "--home", home,
                    env={"SOULCTL_SERVE_TOKEN": "abc"}), 5, "at least 16 printable characters")


def test_a_token_file_others_can_read_is_refused(home, tmp_path):
    token = tmp_path / "token"
    token.write_text("0123456789abcdef0123456789abcdef\n")
    token.chmod(0o644)
    refused(soulctl("serve", "--port", "0", "--token-file", token, "--home", home), 5,
            f"chmod 600 {token}")
