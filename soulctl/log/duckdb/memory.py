"""The notebook and self-definition versions in DuckDB, cached in memory against a stamp file
that every memory write (from any process) renews."""

from __future__ import annotations

import datetime as _dt
import json
import os
import uuid
from typing import Sequence

from soulctl.log.packets import utcnow


class MemoryVersions:
    """Mixed into DuckDBStore: needs its _read, _write, _pending, path and stamp_path."""

    def memory_versions(self, kind: str) -> list[dict]:
        with self._read() as con:
            if con is None or "0005_memory_versions" in self._pending(con):
                return []
            rows = con.execute(f"SELECT version, ts, author, reason, text, {self._review(con)} "
                               "FROM memory_versions WHERE kind = ? ORDER BY version", [kind]).fetchall()
        return [_version(kind, *r) for r in rows]

    def _review(self, con) -> str:
        """The review column, or NULL in a read-only home an older soulctl wrote."""
        return "NULL" if "0006_memory_review" in self._pending(con) else "review"

    def memory_latest(self, kinds: Sequence[str]) -> dict[str, dict]:
        """The newest version of each kind that has one, in one read; cached until the memory
        stamp (rewritten by every memory write, in any process) changes."""
        key = tuple(kinds)
        cached = self._memory_cache
        if cached is not None and cached[0] == (self._memory_stamp(), key):
            return {kind: dict(v) for kind, v in cached[1].items()}
        with self._read() as con:
            if con is None or "0005_memory_versions" in self._pending(con):
                return {}
            stamp = self._memory_stamp(create=True)
            rows = con.execute(
                f"SELECT kind, version, ts, author, reason, text, {self._review(con)} FROM memory_versions "
                "WHERE kind IN (SELECT unnest(?)) QUALIFY row_number() OVER "
                "(PARTITION BY kind ORDER BY version DESC) = 1", [list(kinds)]).fetchall()
        latest = {r[0]: _version(*r) for r in rows}
        self._memory_cache = ((stamp, key), latest) if stamp is not None else None
        return {kind: dict(v) for kind, v in latest.items()}

    def memory_add(self, kind: str, text: str, author: str, reason: str | None,
                   review: dict | None = None) -> int:
        with self._write() as con:
            # renewed first, under the exclusive lock: a failed insert then costs other
            # processes one extra read, where a stamp left old would leave them stale
            self._restamp_memory()
            version = con.execute("SELECT coalesce(max(version), 0) + 1 FROM memory_versions "
                                  "WHERE kind = ?", [kind]).fetchone()[0]
            con.execute("INSERT INTO memory_versions VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [kind, version, utcnow().replace(tzinfo=None), author, reason, text,
                         json.dumps(review) if review else None])
        return int(version)

    def _memory_stamp(self, create: bool = False) -> str | None:
        """The database's inode and the token beside it that every memory write renews; None
        when there is none (then nothing is cached). `create` (under the lock) starts one."""
        try:
            return f"{self.path.stat().st_ino}:{self.stamp_path.read_text()}"
        except FileNotFoundError:
            if not create or not self.path.exists():
                return None
        except OSError:
            return None
        try:
            fd = os.open(self.stamp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another reader made it meanwhile
            pass
        except OSError:  # a read-only home: nothing is cached
            return None
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(uuid.uuid4().hex)
        return self._memory_stamp()

    def _restamp_memory(self) -> None:
        tmp = self.stamp_path.with_name(f"{self.stamp_path.name}.{os.getpid()}.tmp")
        tmp.write_text(uuid.uuid4().hex)
        os.replace(tmp, self.stamp_path)
        self._memory_cache = None


def _version(kind, version, ts, author, reason, text, review) -> dict:
    return {"kind": kind, "version": int(version), "ts": ts.replace(tzinfo=_dt.timezone.utc).isoformat(),
            "author": author, "reason": reason, "text": text,
            "review": json.loads(review) if isinstance(review, str) else review}
