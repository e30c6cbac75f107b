"""A read-only home reads and refuses writes (exit 8); a full disk is exit 8 and the log takes
writes again once there is room; `store stop` stops the embedded server."""

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


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def read_only_home(logged, tmp_path):
    """`logged` seen through a read-only bind mount (the home of a read-only file system)."""
    view = tmp_path / "ro"
    view.mkdir()
    try:
        _mount("--bind", str(logged), str(view))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"this machine cannot bind-mount (no CAP_SYS_ADMIN): {exc}")
    try:
        _mount("-o", "remount,ro,bind", str(view))
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], capture_output=True)


def test_a_read_only_home_reads_and_refuses_writes_with_exit_8(read_only_home, tmp_path):
    home = read_only_home
    for args in (["log", "ls"], ["log", "search", "heron"], ["log", "search", "heron", "--keyword"],
                 ["gen", "ls"], ["notebook", "show"], ["store", "info"], ["budget"],
                 ["log", "sql", "SELECT count(*) FROM packets"], ["log", "export", "-o", str(tmp_path / "x.jsonl")]):
        result = soulctl(*args, "--home", home)
        assert result.code == 0, (args, result)
    assert "The heron waited" in soulctl("log", "search", "heron", "--home", home).stdout
    refused(soulctl("log", "add", "a new line", "--home", home), 8, "read-only")
    refused(soulctl("notebook", "set", "--home", home, input="notes\n"), 8, "read-only")


@pytest.fixture
def full_disk_home(gen0_home, tmp_path):
    """A home whose data/ is a small file system of its own, filled up but for a few KiB."""
    home = copy_home(gen0_home, tmp_path / "home")
    assert soulctl("log", "add", "--session", "f", "--home", home, input="\n".join(LINES) + "\n").code == 0
    saved = tmp_path / "data-saved"
    shutil.copytree(home / "data", saved)
    try:
        _mount("-t", "tmpfs", "-o", "size=8m,mode=700", "tmpfs", str(home / "data"))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"this machine cannot mount a tmpfs (no CAP_SYS_ADMIN): {exc}")
    try:
        shutil.copytree(saved, home / "data", dirs_exist_ok=True)
        filler = home / "data" / "filler"
        free = shutil.disk_usage(home / "data").free
        with open(filler, "wb") as fh:
            fh.write(b"\0" * max(0, free - 48 * 1024))
        yield home, filler
    finally:
        subprocess.run(["umount", "-l", str(home / "data")], capture_output=True)


def test_a_full_disk_is_exit_8_and_the_log_recovers_with_room(full_disk_home):
    home, filler = full_disk_home
    count = "SELECT count(*) AS n FROM packets"
    many = "".join(f"Line {i}: the heron counted {i} fish at the mill pond this morning.\n" for i in range(600))
    result = soulctl("log", "add", "--session", "full", "--home", home, input=many)
    refused(result, 8, "full")
    readable = soulctl("log", "sql", count, "--json", "--home", home)
    assert readable.code == 0, readable  # the log still reads, whole batches only
    before = readable.json()["n"]
    assert before in (3, 3 + 512, 3 + 600)
    filler.unlink()  # room again: the same write goes through, nothing duplicated or lost
    again = soulctl("log", "add", "--session", "room", "--home", home, input=many)
    assert again.code == 0, again
    after = soulctl("log", "sql", count, "--json", "--home", home).json()["n"]
    assert after == before + 600
    found = soulctl("log", "search", "counted 599 fish", "--keyword", "-k", "3", "--json", "--home", home)
    assert found.code == 0 and any("counted 599 fish" in hit["prose"] for hit in found.json_lines()), found


def test_store_stop_stops_the_embedded_server(gen0_home, tmp_path):
    from conftest import running_postgres, use_backend

    home = use_backend(copy_home(gen0_home, tmp_path / "home"), "postgres")
    assert soulctl("log", "add", "a packet in postgres", "--home", home).code == 0
    assert not running_postgres(tmp_path), "a finished command left its server running"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from soulctl.home import Home; from soulctl.log import open_store; "
        f"s = open_store(Home({str(home)!r})); s.count(); print('up', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True, env=BASE_ENV, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "up"
        assert running_postgres(tmp_path)
        refused(soulctl("store", "stop", "--home", home), 7, f"in use by pid {holder.pid}")
        assert running_postgres(tmp_path)
        stopped = soulctl("store", "stop", "--force", "--json", "--home", home)
        assert stopped.code == 0 and stopped.json()["stopped"] is True, stopped
        assert not running_postgres(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert soulctl("store", "stop", "--json", "--home", home).json()["stopped"] is False
    assert soulctl("log", "ls", "--home", home).code == 0  # started again on demand
    assert not running_postgres(tmp_path)
