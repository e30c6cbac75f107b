"""`log sql` stops at its time limit, and a writer waiting on it gets through."""

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


def test_log_sql_stops_at_its_time_limit_and_a_writer_gets_through(home):
    assert soulctl("log", "add", "first", "--home", home).code == 0
    forever = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r"
    started = time.monotonic()
    sql = subprocess.Popen([sys.executable, "-m", "soulctl", "log", "sql", forever, "--timeout", "4",
                            "--home", str(home)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=BASE_ENV, cwd=REPO)
    time.sleep(2.5)  # the query holds the log now
    add = soulctl("log", "add", "written while a query ran", "--home", home)
    stdout, stderr = sql.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert sql.returncode == 7 and "log sql stopped after 4 s, its time limit" in stderr, (stdout, stderr)
    assert elapsed < 4 + 2 + 3, elapsed  # the limit, 2 s, and the process's own start
    assert add.code == 0, add
    assert "written while a query ran" in soulctl("log", "ls", "--home", home).stdout
