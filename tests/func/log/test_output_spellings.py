"""No spelling of a home file — a device or descriptor directory, `..` — is written over by any
command that writes a file the user names; sockets and directories are not outputs."""

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


LINES = ["The heron waited at the edge of the marsh.", "The tide came in over the sand bar.",
         "A lantern hung from the orchard gate."]


@pytest.fixture(scope="module")
def logged(gen0_home, tmp_path_factory):
    """A home with a few packets; the tests that share it only read it (or are refused)."""
    home = copy_home(gen0_home, tmp_path_factory.mktemp("logged2") / "home")
    assert soulctl("log", "add", "--session", "h", "--home", home, input="\n".join(LINES) + "\n").code == 0
    return home


def digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def state_of(home: Path) -> dict:
    """The files a refused write must leave as they were."""
    return {p: digest(home / p) for p in ("data/soul.duckdb", "soul.yaml")}


def spellings(home: Path, name: str) -> list[str]:
    """Ways to name HOME/NAME that start with a device or descriptor directory."""
    return [f"/dev/../{home}/{name}".replace("//", "/"),
            f"/dev/fd/../../../{home}/{name}".replace("//", "/"),
            f"/proc/self/fd/../../../{home}/{name}".replace("//", "/")]


WRITERS = {
    "log export": lambda path: ["log", "export", "-o", path],
    "anchor plot": lambda path: ["anchor", "plot", path],
    "resonate clusters --plot": lambda path: ["resonate", "clusters", "--plot", path],
    "dream --export-bundle": lambda path: ["dream", "--export-bundle", path],
}


@pytest.mark.parametrize("writer", WRITERS)
def test_no_spelling_of_a_home_file_is_written_over(logged, writer):
    before = state_of(logged)
    for name in ("data/soul.duckdb", "soul.yaml"):
        for path in spellings(logged, name):
            for force in ((), ("--force",)):
                refused(soulctl(*WRITERS[writer](path), *force, "--home", logged,
                                env={"SOULCTL_BUNDLE_KEY": "ab" * 32}), 5, "part of the soul home's own state")
    assert state_of(logged) == before


def test_a_descriptor_naming_a_home_file_is_refused(logged):
    before = state_of(logged)
    fd = os.open(logged / "soul.yaml", os.O_RDONLY)
    try:
        for path in (f"/proc/self/fd/{fd}", f"/dev/fd/{fd}"):
            proc = subprocess.run([sys.executable, "-m", "soulctl", "log", "export", "-o", path, "--force",
                                   "--home", str(logged)], capture_output=True, text=True, env=BASE_ENV,
                                  cwd=REPO, pass_fds=(fd,))
            assert proc.returncode == 5 and "part of the soul home's own state" in proc.stderr, proc
    finally:
        os.close(fd)
    assert state_of(logged) == before


def test_an_existing_file_behind_a_device_spelling_needs_force(logged, tmp_path):
    target = tmp_path / "existing.jsonl"
    target.write_text("keep me\n")
    spelled = f"/dev/../{target}".replace("//", "/")
    refused(soulctl("log", "export", "-o", spelled, "--home", logged), 4, "already exists")
    assert target.read_text() == "keep me\n"
    assert soulctl("log", "export", "-o", spelled, "--force", "--home", logged).code == 0
    assert len(target.read_text().splitlines()) == 3


def test_a_socket_or_directory_is_not_an_output(logged, tmp_path):
    import socket

    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        refused(soulctl("log", "export", "-o", path, "--home", logged), 5, "not a file, a FIFO or a terminal")
    finally:
        server.close()
    refused(soulctl("log", "export", "-o", tmp_path, "--home", logged), 5, "is a directory")
