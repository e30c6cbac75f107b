"""Hardening II (issue 22): the cases a hostile and careless user still broke — nothing lost,
nothing leaked, no exit 70. Each test names the case it stands for."""

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


# -- data loss: every spelling of a home file, every command that writes one ----------------
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


# -- leaks ----------------------------------------------------------------------------------
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


def test_an_env_token_is_held_to_the_files_length(home):
    refused(soulctl("serve", "--host", "0.0.0.0", "--port", "0", "--home", home,
                    env={"SOULCTL_SERVE_TOKEN": "abc"}), 5, "at least 16 printable characters")


def test_a_token_file_others_can_read_is_refused(home, tmp_path):
    token = tmp_path / "token"
    token.write_text("0123456789abcdef0123456789abcdef\n")
    token.chmod(0o644)
    refused(soulctl("serve", "--port", "0", "--token-file", token, "--home", home), 5,
            f"chmod 600 {token}")


class _EchoingServer(BaseHTTPRequestHandler):
    """A model server that echoes the bearer key it was sent in its 401, as some do."""

    def do_GET(self):
        key = self.headers.get("Authorization", "")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {key.split()[-1]} ({key})"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_urls_and_relayed_messages_are_redacted(home):
    import yaml

    data = yaml.safe_load((home / "soul.yaml").read_text())
    data["roles"]["soul"] = {"backend": "openai", "url": "http://soul:PASSWORD-SECRET@127.0.0.1:9/v1"}
    (home / "soul.yaml").write_text(yaml.safe_dump(data))
    unreachable = soulctl("chat", "hello", "--home", home)
    assert unreachable.code == 7 and "PASSWORD-SECRET" not in unreachable.stderr, unreachable
    assert "soul:***@127.0.0.1" in unreachable.stderr

    server = HTTPServer(("127.0.0.1", 0), _EchoingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        data["roles"]["soul"]["url"] = f"http://127.0.0.1:{server.server_port}/v1"
        (home / "soul.yaml").write_text(yaml.safe_dump(data))
        echoed = soulctl("chat", "hello", "-v", "--home", home, env={"OPENAI_API_KEY": "sk-live-0123456789abcdef"})
        assert echoed.code == 7, echoed
        assert "0123456789abcdef" not in echoed.stderr and "sk-***" in echoed.stderr, echoed.stderr
    finally:
        server.shutdown()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_homes_state_is_private_and_outputs_honour_the_umask(gen0_home, tmp_path):
    # gen0_home was made by `soulctl init` like any home
    assert mode(gen0_home / "data") == 0o700 and mode(gen0_home / "data" / "soul.duckdb") == 0o600
    for path in (gen0_home / "generations" / "gen-0000").iterdir():
        assert mode(path) & 0o277 == 0, path  # read-only, and private
    home = copy_home(gen0_home, tmp_path / "home")
    add = subprocess.run([sys.executable, "-m", "soulctl", "log", "add", "a heron", "--home", str(home)],
                         env=BASE_ENV, cwd=REPO, capture_output=True, preexec_fn=lambda: os.umask(0o022))
    assert add.returncode == 0
    for path in (home / "data").rglob("*"):
        assert mode(path) & 0o077 == 0, path
    for umask, expected in ((0o022, 0o644), (0o077, 0o600)):
        out = tmp_path / f"export-{umask:o}.jsonl"
        subprocess.run([sys.executable, "-m", "soulctl", "log", "export", "-o", str(out), "--home", str(home)],
                       env=BASE_ENV, cwd=REPO, check=True, preexec_fn=lambda u=umask: os.umask(u))
        assert mode(out) == expected


# -- exit 70 for ordinary conditions ------------------------------------------------------------
def test_ordinary_bad_input_is_one_line_not_a_traceback(logged, home):
    refused(soulctl("budget", "--ram", "0", "--home", logged), 5, "not a size a machine has")
    refused(soulctl("budget", "--ram", "0GiB", "--model", "smollm2-135m"), 5, "not a size a machine has")
    (home / "soul.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary")
    refused(soulctl("log", "ls", "--home", home), 5, "is not UTF-8 text")
    before = state_of(logged)
    refused(soulctl("log", "add", "--jsonl", "--home", logged, input='{"prose": "a\\ud800b"}\n'), 5,
            "line 1: `prose` holds a lone UTF-16 surrogate")
    refused(soulctl("log", "add", "--jsonl", "--home", logged, input='{"prose": "ok", "meta": {"k": "\\udfff"}}\n'),
            5, "line 1: `meta.k` holds a lone UTF-16 surrogate")
    refused(soulctl("log", "add", "x", "--meta", '{"k": "\\ud800"}', "--home", logged), 5, "lone UTF-16 surrogate")
    refused(soulctl("log", "add", "--jsonl", "--home", logged, input="[" * 50_000 + "]" * 50_000 + "\n"), 5,
            "nested too deeply")
    assert state_of(logged) == before


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


# -- a read-only home, a full disk ----------------------------------------------------------------
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


# -- the nightly job on its own data --------------------------------------------------------------
def test_a_failing_step_ends_the_cycle_logged_and_typed(gen0_home, tmp_path):
    home = copy_home(gen0_home, tmp_path / "home")
    conversation = REPO / "scripts" / "demo-conversation.jsonl"
    assert soulctl("log", "add", "--jsonl", "--home", home, input=conversation.read_text()).code == 0
    recipes = home / "recipes"
    (recipes / "resonate.yaml").write_text((recipes / "resonate.yaml").read_text()
                                           .replace("threshold: 0.6", "threshold: 0.3")
                                           .replace("min_examples: 8", "min_examples: 2"))
    (recipes / "dream.yaml").write_text((recipes / "dream.yaml").read_text()
                                        .replace("[q_proj, k_proj, v_proj]", "[q_proj, nosuch_proj]"))
    result = soulctl("evolve", "--json", "--home", home, timeout=900)
    refused(result, 5, "has no module(s) nosuch_proj")
    record = soulctl("log", "ls", "--session", "evolve", "--json", "--home", home).json_lines()[0]
    assert record["meta"]["evolve"]["status"] == "failed" and record["meta"]["evolve"]["step"] == "dream"
    assert "dream failed" in record["prose"]
    assert (home / "generations" / "current").resolve().name == "gen-0000"


def test_a_reply_that_opens_its_session_never_reaches_a_buffer(home):
    opener = {"prose": "Good morning. The herons are back on the mill pond.", "role": "soul", "session": "o"}
    rows = [opener] + [{"prose": p, "role": r, "session": "o"} for p, r in (
        ("What do they eat?", "user"), ("Mostly small fish and frogs from the shallows.", "soul"))]
    assert soulctl("log", "add", "--jsonl", "--home", home,
                   input="\n".join(json.dumps(r) for r in rows) + "\n").code == 0
    listed = soulctl("log", "ls", "--role", "soul", "--reverse", "-q", "--home", home).stdout.split()
    for pid in listed:
        assert soulctl("resonate", "mark", pid, "0.95", "--home", home).code == 0
    result = soulctl("resonate", "buffer", "--json", "--home", home)
    assert result.code == 0, result
    record = result.json()
    assert record["examples"] == 1 and record["dropped_unprompted"] == 1
    assert record["log_ids"] == [listed[1]]
    first = json.loads(Path(record["path"]).read_text().splitlines()[0])
    assert first["messages"][0]["role"] == "user"
    # a hand-made buffer that does it anyway is refused before any model loads
    bad = home / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}) + "\n")
    refused(soulctl("dream", str(bad), "--home", home), 5, "bad.jsonl:1: the reply answers no user message")


# -- left running -------------------------------------------------------------------------------
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
