"""Exporting and adding packets: nothing lost, nothing written over, every bad input one line
with its exit code and nothing changed on disk; Ctrl-C says what was committed."""

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


LINES = ["The heron waited at the edge of the marsh.", "The tide came in over the sand bar.",
         "A lantern hung from the orchard gate.", "The glacier moved a metre this year."]


@pytest.fixture(scope="module")
def logged(gen0_home, tmp_path_factory):
    """A home with a few packets, one reply linked to its prompt and one mark; the tests that
    share it leave its log as they found it, but for the whole packets they add."""
    from conftest import copy_home

    home = copy_home(gen0_home, tmp_path_factory.mktemp("logged") / "home")
    assert soulctl("log", "add", "--session", "h", "--home", home, input="\n".join(LINES) + "\n").code == 0
    first = soulctl("log", "ls", "--reverse", "-n", "1", "-q", "--home", home).stdout.strip()
    assert soulctl("log", "add", "A reply to the heron.", "--role", "soul", "--parent", first,
                   "--session", "h", "--home", home).code == 0
    assert soulctl("resonate", "mark", first, "0.8", "--home", home).code == 0
    return home


def fingerprint(home) -> tuple:
    """What must not change when a command is refused: the database's bytes and its counts."""
    db = home / "data" / "soul.duckdb"
    digest = hashlib.sha256(db.read_bytes()).hexdigest() if db.exists() else None
    counts = soulctl("log", "sql", "SELECT (SELECT count(*) FROM packets) AS p, "
                     "(SELECT count(*) FROM resonance_marks) AS m, "
                     "(SELECT count(*) FROM memory_versions) AS v", "--json", "--home", home).json()
    return digest, counts


def no_temp_files(directory) -> None:
    assert not [p for p in os.listdir(directory) if ".tmp" in p], os.listdir(directory)


def test_export_never_replaces_the_live_store(logged):
    before = fingerprint(logged)
    for force in ((), ("--force",)):
        for target in ("data/soul.duckdb", "data/soul.duckdb.wal", "data/index/log/state.json",
                       "soul.yaml", "generations/gen-0000/config.json"):
            refused(soulctl("log", "export", "-o", logged / target, *force, "--home", logged),
                    5, "part of the soul home's own state")
    assert fingerprint(logged) == before


def test_export_refuses_an_existing_file_unless_forced(logged, tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("keep me\n")
    refused(soulctl("log", "export", "-o", target, "--home", logged), 4, "already exists")
    assert target.read_text() == "keep me\n"
    result = soulctl("log", "export", "-o", target, "--force", "--home", logged)
    assert result.code == 0, result
    assert len(target.read_text().splitlines()) == 5
    no_temp_files(tmp_path)
    refused(soulctl("log", "export", "-o", tmp_path / "nowhere" / "x.jsonl", "--home", logged),
            3, "does not exist")


def test_export_follows_a_symlink_to_its_file(logged, tmp_path):
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    refused(soulctl("log", "export", "-o", link, "--home", logged), 4, "already exists")
    assert soulctl("log", "export", "-o", link, "--force", "--home", logged).code == 0
    assert link.is_symlink() and len(real.read_text().splitlines()) == 5


def test_export_writes_into_a_fifo_and_devices(logged, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
    reader.start()
    result = soulctl("log", "export", "-o", fifo, "--home", logged)
    reader.join(timeout=60)
    assert result.code == 0, result
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and len(got[0].splitlines()) == 5
    assert soulctl("log", "export", "-o", "/dev/null", "--home", logged).code == 0
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    refused(soulctl("log", "export", "-o", "/dev/full", "--home", logged), 8, "No space left on device")
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)
    out = soulctl("log", "export", "-o", "/dev/stdout", "--home", logged, process=True)  # the real fd 1
    assert out.code == 0 and len(out.stdout.splitlines()) == 5


def test_export_round_trips_through_add(logged, gen0_home, tmp_path):
    from conftest import copy_home

    dump = tmp_path / "log.jsonl"
    assert soulctl("log", "export", "--with-embeddings", "-o", dump, "--home", logged).code == 0
    fresh = copy_home(gen0_home, tmp_path / "fresh")
    result = soulctl("log", "add", "--jsonl", "--with-embeddings", "--home", fresh, input=dump.read_text())
    assert result.code == 0, result
    again = tmp_path / "again.jsonl"
    assert soulctl("log", "export", "--with-embeddings", "-o", again, "--home", fresh).code == 0
    a = [json.loads(line) for line in dump.read_text().splitlines()]
    b = [json.loads(line) for line in again.read_text().splitlines()]
    keep = ("id", "ts", "session", "role", "prose", "parent", "corrects", "generation", "meta",
            "resonance", "embed_model", "embedding")
    assert [{k: r[k] for k in keep} for r in a] == [{k: r[k] for k in keep} for r in b]
    assert any(r["resonance"] == 0.8 for r in b) and any(r["parent"] for r in b)
    # the same file again: every id is already there, refused whole, naming the first line
    before = fingerprint(fresh)
    refused(soulctl("log", "add", "--jsonl", "--home", fresh, input=dump.read_text()), 4,
            "line 1: a packet with id")
    assert fingerprint(fresh) == before
    # without --with-embeddings the prose is embedded anew: same embedder, same vectors
    third = copy_home(gen0_home, tmp_path / "third")
    assert soulctl("log", "add", "--jsonl", "--home", third, input=dump.read_text()).code == 0
    shown = soulctl("log", "show", a[0]["id"], "--json", "--home", third).json()
    assert shown["ts"].startswith(a[0]["ts"][:19].replace(" ", "T"))
    assert max(abs(x - y) for x, y in zip(shown["embedding"], a[0]["embedding"])) < 1e-5


def test_import_refuses_vectors_from_another_embedder(home):
    assert soulctl("log", "add", "a first heron", "--home", home).code == 0
    model = soulctl("log", "ls", "--json", "--home", home).json_lines()[0]["embed_model"]
    line = {"prose": "a heron", "embedding": [0.1] * 384, "embed_model": "someone-else"}
    refused(soulctl("log", "add", "--jsonl", "--with-embeddings", "--home", home, input=json.dumps(line)),
            5, "line 1: the embedding was made by someone-else")
    line["embed_model"] = model
    line["embedding"] = [0.1] * 10
    refused(soulctl("log", "add", "--jsonl", "--with-embeddings", "--home", home, input=json.dumps(line)),
            5, "line 1: `embedding` has 10 dimensions; the log's embedder gives 384")
    line["embedding"] = [0.1] * 383 + [1e39]  # infinity in float32
    refused(soulctl("log", "add", "--jsonl", "--with-embeddings", "--home", home, input=json.dumps(line)),
            5, "line 1: `embedding` holds a value that is not a finite 32-bit number")
    refused(soulctl("log", "add", "x", "--with-embeddings", "--home", home), 2, "--jsonl")


def test_dangling_references_are_refused(logged):
    known = soulctl("log", "ls", "-n", "1", "-q", "--home", logged).stdout.strip()
    before = fingerprint(logged)
    cases = [
        (["log", "add", "x", "--corrects", "notanid"], None, 3, "--corrects notanid names no packet"),
        (["log", "add", "x", "--parent", "0190f3a0-0000-7000-8000-000000000000"], None, 3, "names no packet"),
        (["log", "add", "--jsonl"], '{"prose": "a", "id": "not-a-uuid"}', 5, "line 1: id 'not-a-uuid' is not a UUID"),
        (["log", "add", "--jsonl"], '{"prose": "a", "generation": "gen-9999"}', 3, "line 1: generation gen-9999 does not exist"),
        (["log", "add", "--jsonl"], '{"prose": "a", "corpus": "nosuch"}', 3, "line 1: corpus nosuch does not exist"),
        (["log", "add", "--jsonl"], '{"prose": "a"}\n{"prose": "b", "parent": "0190f3a0-0000-7000-8000-000000000001"}',
         3, "line 2: parent"),
        (["log", "add", "--jsonl"], f'{{"prose": "a", "id": "{known}"}}', 4, "already in the log"),
        (["log", "add", "--jsonl"], '{"prose": "a", "id": "0190f3a0-0000-7000-8000-0000000000aa"}\n'
                                    '{"prose": "b", "id": "0190f3a0-0000-7000-8000-0000000000aa"}', 5, "line 2: id"),
    ]
    for args, stdin, code, words in cases:
        refused(soulctl(*args, "--home", logged, input=stdin), code, words)
    assert fingerprint(logged) == before
    # a reference to a packet earlier in the same input is whole, not dangling
    pair = ('{"prose": "q", "id": "0190f3a0-0000-7000-8000-0000000000bb"}\n'
            '{"prose": "r", "role": "soul", "parent": "0190f3a0-0000-7000-8000-0000000000bb"}')
    assert soulctl("log", "add", "--jsonl", "--home", logged, input=pair).code == 0


def test_ordinary_bad_input_gets_its_exit_code(logged, tmp_path):
    before = fingerprint(logged)
    refused(soulctl("log", "search", "river", "-k", "1000000000", "--home", logged), 2, "-k")
    refused(soulctl("mount", "search", "river", "-k", "1000000000", "--home", logged), 2, "-k")
    refused(soulctl("log", "search", "river", "-k", "9223372036854775808", "--home", logged), 2, "-k")
    refused(soulctl("log", "ls", "--since", "99999999999d", "--home", logged), 5, "--since")
    refused(soulctl("log", "search", "prose:river OR id:*", "--keyword", "--home", logged), 5, "keyword query")
    refused(soulctl("dream", "--import", tmp_path / "missing.bin", "--home", logged,
                    env={"SOULCTL_BUNDLE_KEY": "ab" * 32}), 3, "no bundle")
    bad = subprocess.run([sys.executable, "-m", "soulctl", "log", "search", b"riv\xffer", "--home", str(logged)],
                         capture_output=True, env=BASE_ENV, cwd=REPO)
    assert bad.returncode == 2 and b"argument 'riv\\xffer' is not valid UTF-8" in bad.stderr, bad
    assert fingerprint(logged) == before


def test_json_has_no_nan_and_soul_home_is_named(logged, tmp_path):
    row = soulctl("log", "sql", "SELECT 'NaN'::DOUBLE AS x, 'inf'::DOUBLE AS y, 1.5 AS z", "--json",
                  "--home", logged)
    assert row.stdout.strip() == '{"x": null, "y": null, "z": 1.5}', row
    result = soulctl("log", "ls", cwd=tmp_path, env={"SOUL_HOME": str(tmp_path / "nohome")})
    refused(result, 3, f"SOUL_HOME={tmp_path / 'nohome'}")


def test_sigint_during_add_says_what_was_committed(home, tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"Line {i}: the heron counted {i} fish by the mill pond.\n" for i in range(6000)))
    with open(lines) as stdin:
        proc = subprocess.Popen([sys.executable, "-m", "soulctl", "log", "add", "--home", str(home)],
                                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=BASE_ENV, cwd=REPO, text=True)
    db = home / "data" / "soul.duckdb"
    deadline = time.time() + 300
    while time.time() < deadline:  # the first batch of 512 is committed: the checkpoint grew the file
        if db.exists() and db.stat().st_size > 1_500_000:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "packets were committed" in stderr and "Traceback" not in stderr, stderr
    committed = int(stderr.split("interrupted: ")[1].split(" of ")[0])
    count = soulctl("log", "sql", "SELECT count(*) AS n FROM packets", "--json", "--home", home).json()["n"]
    assert count == committed and committed % 512 == 0 and 0 < committed < 6000
