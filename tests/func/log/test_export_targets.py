"""An output never lands on a soul's own state, however the path is spelled: compared as files
(device and inode), not as names — a hard link, a bind mount of the home, a symlink — and
another home's state is as protected as this one's, `--force` or not."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from conftest import BASE_ENV, REPO, copy_home, refused, soulctl

ROOT = os.geteuid() == 0


@pytest.fixture
def logged(home):
    assert soulctl("--home", home, "log", "add", "a packet to export").code == 0
    return home


@pytest.mark.parametrize("what", ["soul.yaml", "data/soul.duckdb"])
def test_a_hard_link_to_the_homes_state_is_refused(logged, tmp_path, what):
    link = tmp_path / "elsewhere" / "export.jsonl"
    link.parent.mkdir()
    os.link(logged / what, link)
    before = (logged / what).read_bytes()
    refused(soulctl("--home", logged, "log", "export", "--force", "-o", link), 5, "soul home's own state")
    assert (logged / what).read_bytes() == before


def test_a_bind_mount_of_the_home_is_the_home(logged, tmp_path):
    mount = tmp_path / "mnt"
    mount.mkdir()
    before = (logged / "soul.yaml").read_bytes()
    script = (f"mount --bind {shlex.quote(str(logged))} {shlex.quote(str(mount))}\n"
              + "\n".join(f"{shlex.join([sys.executable, '-m', 'soulctl', '--home', str(logged), 'log', 'export', '--force', '-o', str(mount / target)])} || echo rc=$?"
                          for target in ("soul.yaml", "data/soul.duckdb", "data/new-file.jsonl")))
    ran = subprocess.run(["unshare", "-m" if ROOT else "-rm", "sh", "-c", script], capture_output=True, text=True,
                         env=BASE_ENV, cwd=REPO, timeout=300)
    assert ran.stdout.count("rc=5") == 3, ran
    assert ran.stderr.count("soul home's own state") == 3 and "Traceback" not in ran.stderr
    assert (logged / "soul.yaml").read_bytes() == before
    assert not (logged / "data" / "new-file.jsonl").exists()


@pytest.mark.parametrize("what", ["data/soul.duckdb", "soul.yaml", "generations/gen-0000/config.json"])
def test_another_homes_state_is_refused_even_with_force(logged, gen0_home, tmp_path, what):
    other = copy_home(gen0_home, tmp_path / "other")
    before = (other / what).read_bytes()
    refused(soulctl("--home", logged, "log", "export", "--force", "-o", other / what), 5, "soul home's own state")
    link = tmp_path / "innocent.jsonl"
    link.symlink_to(other / what)
    refused(soulctl("--home", logged, "log", "export", "--force", "-o", link), 5, "soul home's own state")
    assert (other / what).read_bytes() == before


def test_an_ordinary_file_is_still_replaced_with_force(logged, tmp_path):
    target = tmp_path / "export.jsonl"
    target.write_text("old\n")
    refused(soulctl("--home", logged, "log", "export", "-o", target), 4, "already exists")
    assert soulctl("--home", logged, "log", "export", "--force", "-o", target).code == 0
    assert "a packet to export" in target.read_text()
