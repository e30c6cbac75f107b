"""`status` tells the truth about a home in any state: a part it cannot read says why, the rest
is still reported, and nothing is recreated behind the user's back. The commands that need
that part refuse in one line."""

from __future__ import annotations

import json

import pytest

from conftest import refused, soulctl, use_backend


def test_a_home_whose_data_is_gone_is_reported_not_recreated(home):
    import shutil

    shutil.rmtree(home / "data")
    status = soulctl("--home", home, "--json", "status")
    assert status.code == 0, status
    report = status.json()
    assert "data is missing" in report["log"]["error"] and report["current"] == "gen-0000"
    assert not (home / "data").exists()
    refused(soulctl("--home", home, "log", "ls"), 3, "data is missing")
    refused(soulctl("--home", home, "log", "add", "into nowhere"), 3, "data is missing")
    assert not (home / "data").exists()


@pytest.mark.parametrize("kind, text", [
    ("service", '{"kind": "service", garbage'),
    ("service", '{"kind": "service", "scheduler": "systemd"}'),
    ("schedule", '{"kind": "schedule", "scheduler": "cron", "name": "x", "files": {}, "details": {"at": 5}}'),
    ("schedule", "[1, 2, 3]"),
])
def test_a_corrupt_unit_record_is_named_never_a_crash(home, kind, text):
    (home / "data" / f"{kind}.json").write_text(text)
    status = soulctl("--home", home, "--json", "status")
    assert status.code == 0 and f"{kind}.json" in status.json()[kind]["error"], status
    human = soulctl("--home", home, "status")
    assert human.code == 0 and "cannot read" in human.stdout
    refused(soulctl("--home", home, kind, "status"), 5, f"{kind}.json")


@pytest.mark.parametrize("garbage", ["garbage\n", "", "99999999\n/somewhere/else\n"])
def test_a_lock_file_that_is_not_postgresqls_is_named(home, garbage):
    assert soulctl("--home", home, "log", "add", "before the move").code == 0
    use_backend(home, "postgres")
    assert soulctl("--home", home, "store", "stop").code == 0
    (home / "data" / "postgres" / "postmaster.pid").write_text(garbage)
    refused(soulctl("--home", home, "log", "ls"), 5, "not a PostgreSQL lock file")
    refused(soulctl("--home", home, "store", "stop"), 5, "not a PostgreSQL lock file")
    status = soulctl("--home", home, "--json", "status")
    assert status.code == 0 and "not a PostgreSQL lock file" in status.json()["log"]["error"]
    (home / "data" / "postgres" / "postmaster.pid").unlink()
    listed = soulctl("--home", home, "--json", "log", "ls")
    assert listed.code == 0 and json.loads(listed.stdout.splitlines()[0])["prose"] == "before the move"
    assert soulctl("--home", home, "store", "stop").code == 0
