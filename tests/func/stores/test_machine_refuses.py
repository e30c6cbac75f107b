"""When the machine refuses — a full disk, a read-only file system, a file size limit, a
permission — every command says so in one line with exit 8, and nothing is half-written: a
write that failed before its commit stored nothing; one that failed after it exits 0 with a
warning, so a retry never adds a packet twice.

The conditions are real: a tmpfs of its own in a private mount namespace (`unshare -m`), the
process's file size limit (RLIMIT_FSIZE), and — when the suite runs as root, as CI does —
root's file-access capabilities dropped from the bounding set (`setpriv`), so permissions
apply to it as they do to a user."""

from __future__ import annotations

import os
import resource
import shlex
import subprocess
import sys

import pytest

from conftest import BASE_ENV, REPO, soulctl

ROOT = os.geteuid() == 0
SOULCTL = [sys.executable, "-m", "soulctl"]


def in_namespace(script: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`script` (sh) in a mount namespace of its own, where it may mount tmpfs and bind mounts."""
    unshare = ["unshare", "-m"] if ROOT else ["unshare", "-rm"]
    return subprocess.run([*unshare, "sh", "-ec", script], capture_output=True, text=True, env=BASE_ENV,
                          cwd=REPO, timeout=timeout)


def cli(home, *args: str) -> str:
    return shlex.join([*SOULCTL, "--home", str(home), *map(str, args)])


def full(folder, keep: int = 0) -> str:
    """sh lines: `folder` becomes a 8 MiB tmpfs holding what it held, then filled to `keep` bytes free."""
    return (f"cp -a {folder} {folder}.save && mount -t tmpfs -o size=8m,mode=0700 tmpfs {folder} && "
            f"cp -a {folder}.save/. {folder}/ && "
            f"{sys.executable} -c \"import os; s=os.statvfs('{folder}'); "
            f"open('{folder}/fill','wb').write(b'0'*max(0, s.f_bavail*s.f_frsize-{keep}))\"\n")


def without_dac(command: list[str]) -> list[str]:
    """`command` as a process that file permissions apply to, even when it runs as root."""
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command] if ROOT else command


def run(command: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=BASE_ENV, cwd=REPO, timeout=300, **kw)


def one_line(stderr: str, words: str) -> None:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and words in lines[0], stderr
    assert "Traceback" not in stderr


def count(home) -> int:
    return len(soulctl("--home", home, "log", "ls", "-n", "0", "-q").stdout.split())


@pytest.fixture
def logged(home):
    assert soulctl("--home", home, "log", "add", "the lighthouse keeper counts the gulls").code == 0
    return home


def test_a_full_disk_before_the_commit_stores_nothing(logged):
    data = logged / "data"
    ran = in_namespace(full(data) + f"{cli(logged, 'log', 'add', 'written to a full disk')} || echo rc=$?\n"
                       f"rm {data}/fill\n{cli(logged, 'log', 'ls', '-n', '0', '-q')}\n"
                       f"{cli(logged, 'log', 'search', 'full disk', '--keyword', '-q')}\n")
    assert "rc=8" in ran.stdout, ran
    one_line(ran.stderr, "the disk is full")
    ids = [line for line in ran.stdout.splitlines() if "-" in line and not line.startswith("rc=")]
    assert len(set(ids)) == 1, ran.stdout  # only the packet from before; the search found nothing new


def test_a_full_disk_after_the_commit_warns_and_keeps_the_packet(logged):
    index = logged / "data" / "index"
    ran = in_namespace(full(index) + f"{cli(logged, 'log', 'add', 'written as the index disk filled')}\n"
                       f"echo rc=$?\nrm {index}/fill\n{cli(logged, 'log', 'reindex')}\n"
                       f"{cli(logged, 'log', 'search', 'index disk filled', '--keyword', '-k', '1')}\n")
    assert "rc=0" in ran.stdout and "added 1 packet" in ran.stdout, ran
    assert "warning: 1 packet(s) committed" in ran.stderr and "Traceback" not in ran.stderr
    assert "written as the index disk filled" in ran.stdout.splitlines()[-1]
    assert count(logged) == 2  # not retried: once is all it took


def test_a_read_only_home_reads_and_refuses_writes(logged):
    data = logged / "data"
    ran = in_namespace(f"mount --bind {data} {data} && mount -o remount,bind,ro {data}\n"
                       f"{cli(logged, 'log', 'add', 'on a read-only disk')} || echo rc=$?\n"
                       f"{cli(logged, 'log', 'search', 'lighthouse', '-k', '1', '-q')} && echo search=ok\n"
                       f"ID=$({cli(logged, 'log', 'ls', '-n', '1', '-q')})\n"
                       f"{cli(logged, 'resonate', 'mark')} $ID 1 || echo mark=$?\n")
    assert "rc=8" in ran.stdout and "search=ok" in ran.stdout and "mark=8" in ran.stdout, ran
    assert ran.stderr.count("error: ") == 2 and "read-only" in ran.stderr and "Traceback" not in ran.stderr
    assert count(logged) == 1


@pytest.mark.parametrize("limit_kib", [4, 1200])
def test_a_file_size_limit_is_the_machine_refusing_not_a_crash(logged, limit_kib):
    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kib * 1024, resource.RLIM_INFINITY))

    before = count(logged)
    added = run([*SOULCTL, "--home", str(logged), "log", "add", "past the size limit"], preexec_fn=limited)
    assert added.returncode in (0, 8) and "Traceback" not in added.stderr, added
    assert count(logged) == before + (added.returncode == 0)  # committed exactly when it says so
    export = run([*SOULCTL, "--home", str(logged), "log", "export", "--with-embeddings",
                  "-o", str(logged.parent / "out.jsonl")], preexec_fn=limited)
    if limit_kib < 64:
        assert export.returncode == 8, export
        one_line(export.stderr, "size limit")
        assert not (logged.parent / "out.jsonl").exists()  # no half-written output


@pytest.mark.parametrize("blocked", ["data/index", "data/soul.duckdb", "generations", "data"])
def test_a_permission_the_process_lacks_is_one_line(logged, blocked):
    target = logged / blocked
    mode = target.stat().st_mode
    os.chmod(target, 0)
    try:
        search = run(without_dac([*SOULCTL, "--home", str(logged), "log", "search", "lighthouse"]))
        status = run(without_dac([*SOULCTL, "--home", str(logged), "--json", "status"]))
        add = run(without_dac([*SOULCTL, "--home", str(logged), "log", "add", "written without permission"]))
    finally:
        os.chmod(target, mode)
    assert search.returncode in (0, 8), search
    if search.returncode == 8:
        one_line(search.stderr, "permission denied")
    assert status.returncode == 0 and "Traceback" not in status.stderr, status  # status reports, never crashes
    assert add.returncode in (0, 8) and "Traceback" not in add.stderr, add
    if add.returncode == 8:
        one_line(add.stderr, "permission denied")
    assert count(logged) == 1 + (add.returncode == 0)  # stored exactly when it says so
