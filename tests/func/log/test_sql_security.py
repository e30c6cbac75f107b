"""`log sql` reads the log's tables and nothing else: no file, no URL, no extension, no
setting, no write. Each attempt is refused in one line, and none of them touches the file
system or the network (no new file under $HOME; an unroutable proxy would catch a request)."""

from __future__ import annotations

import pytest
from conftest import copy_home, refused, soulctl


@pytest.fixture(scope="module")
def sql_home(gen0_home, tmp_path_factory):
    root = copy_home(gen0_home, tmp_path_factory.mktemp("sql") / "home")
    assert soulctl("log", "add", "The heron waited.", "--home", root).code == 0
    return root


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "user-home"
    home.mkdir()
    (home / "secret.txt").write_text("do not read me\n")
    return {"HOME": str(home), "SOULCTL_API_KEY": "sk-leak-me", "http_proxy": "http://10.255.255.1:9",
            "https_proxy": "http://10.255.255.1:9", "ALL_PROXY": "http://10.255.255.1:9"}


FILE_READERS = [
    "SELECT content FROM read_text('/etc/passwd')",
    "SELECT content FROM read_text('/proc/self/environ')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('{home}/secret.txt')",
    "SELECT * FROM read_parquet('/tmp/x.parquet')",
    "SELECT * FROM read_json_auto('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM '{home}/secret.txt'",
    "SELECT * FROM read_blob('/etc/passwd')",
]
URL_READERS = [
    "SELECT * FROM read_json_auto('https://example.com/x.json')",
    "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
    "SELECT * FROM read_csv('http://example.com/x.csv')",
]
STATEMENTS = [
    ("COPY packets TO '{home}/out.csv'", "COPY"),
    ("ATTACH '{home}/other.duckdb' AS other", "ATTACH"),
    ("INSTALL httpfs", "INSTALL"),
    ("LOAD httpfs", "LOAD"),
    ("SET enable_external_access = true", "SET"),
    ("RESET lock_configuration", "RESET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("CREATE TABLE t AS SELECT 1", "CREATE"),
    ("INSERT INTO packets SELECT * FROM packets", "INSERT"),
    ("DELETE FROM packets", "DELETE"),
    ("EXPORT DATABASE '{home}/dump'", "EXPORT"),
    ("CALL enable_logging()", "CALL"),
]


def _home_files(env) -> set:
    from pathlib import Path

    return {p for p in Path(env["HOME"]).rglob("*")}


@pytest.fixture
def store(sql_home, env, monkeypatch):
    """The home's store in this process, with the environment a leak would show."""
    from soulctl.home import Home
    from soulctl.log import open_store

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return open_store(Home(sql_home))


def test_readers_of_files_and_urls_are_refused(store, env):
    from soulctl.errors import InvalidInput

    before = _home_files(env)
    for query in FILE_READERS + URL_READERS:
        with pytest.raises(InvalidInput) as refusal:
            store.sql(query.format(home=env["HOME"]))
        message = str(refusal.value)
        assert message.startswith("SQL error") and "\n" not in message, message
        assert any(w in message for w in ("disabled", "Permission", "does not exist")), (query, message)
        assert "do not read me" not in message and "sk-leak-me" not in message
    assert _home_files(env) == before


def test_statements_that_are_not_reads_are_refused(store, env):
    from soulctl.errors import InvalidInput

    before = _home_files(env)
    for query, word in STATEMENTS:
        with pytest.raises(InvalidInput, match=f"log sql is read-only: {word} statements are refused"):
            store.sql(query.format(home=env["HOME"]))
    assert _home_files(env) == before


def test_the_command_line_refuses_in_one_line(sql_home, env):
    before = _home_files(env)
    result = soulctl("log", "sql", "SELECT content FROM read_text('/proc/self/environ')", "--home", sql_home,
                     env=env)
    refused(result, 5, "SQL error")
    assert "sk-leak-me" not in result.stdout + result.stderr
    refused(soulctl("log", "sql", "INSTALL httpfs", "--home", sql_home, env=env), 5,
            "log sql is read-only: INSTALL statements are refused")
    assert _home_files(env) == before


def test_settings_and_environment_stay_out_of_reach(sql_home, env):
    result = soulctl("log", "sql", "SELECT getenv('SOULCTL_API_KEY') AS k", "--home", sql_home, env=env)
    assert "sk-leak-me" not in result.stdout + result.stderr
    row = soulctl("log", "sql", "SELECT current_setting('enable_external_access') AS e, "
                  "current_setting('lock_configuration') AS l", "--json", "--home", sql_home, env=env)
    assert row.json() == {"e": False, "l": True}, row


def test_many_statements_are_refused_not_half_run(sql_home, env):
    refused(soulctl("log", "sql", "SELECT 1; SELECT 2", "--home", sql_home, env=env), 5,
            "one statement at a time; got 2")


def test_reads_of_the_log_still_work(sql_home, env):
    rows = soulctl("log", "sql", "SELECT role, count(*) AS n FROM log GROUP BY role", "--json",
                   "--home", sql_home, env=env).json_lines()
    assert rows == [{"role": "user", "n": 1}]
    explained = soulctl("log", "sql", "EXPLAIN SELECT * FROM packets", "--home", sql_home, env=env)
    assert explained.code == 0, explained
