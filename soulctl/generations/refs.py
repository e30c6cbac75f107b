"""Generation ids and references: `gen-0003`, `3`, `current`, `anchor`, `current~1`, and the
`current` link that moves atomically once a new generation is complete."""

from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path

from soulctl.errors import InvalidInput, NotFound
from soulctl.generations.lineage import read_lineage
from soulctl.home import Home

CURRENT = "current"
GEN_ID = re.compile(r"^gen-(\d{4,})$")
TMP_PREFIX = ".tmp-"


def gen_id(number: int) -> str:
    return f"gen-{number:04d}"


def gen_number(gid: str) -> int:
    match = GEN_ID.match(gid)
    if not match:
        raise InvalidInput(f"not a generation id: {gid!r}")
    return int(match.group(1))



def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def generation_ids(home: Home) -> list[str]:
    if not home.generations.is_dir():
        return []
    ids = [p.name for p in home.generations.iterdir()
           if GEN_ID.match(p.name) and p.is_dir() and not p.is_symlink()]
    return sorted(ids, key=gen_number)



def current(home: Home) -> str | None:
    link = home.generations / CURRENT
    if link.is_symlink():
        return Path(os.readlink(link)).name
    if link.is_file():  # filesystems without symlinks keep the name in a file
        return link.read_text().strip() or None
    return None


def set_current(home: Home, gid: str) -> None:
    if not (home.generations / gid).is_dir():
        raise NotFound(f"no generation {gid}", hint="run `soulctl gen ls`")
    tmp = home.generations / f"{TMP_PREFIX}current-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(gid, tmp)
    os.replace(tmp, home.generations / CURRENT)


def resolve(home: Home, ref: str | None) -> str:
    """`gen-0003`, `3`, `current`, `anchor`, `current~1` (parent), or a unique prefix → id."""
    ids = generation_ids(home)
    if not ids:
        raise NotFound("this soul home has no generations", hint="run `soulctl init`")
    ref = (ref or CURRENT).strip()
    back = 0
    if "~" in ref:
        ref, _, n = ref.partition("~")
        back = int(n or 1) if (n or "1").isdigit() else -1
        if back < 0:
            raise InvalidInput(f"bad generation reference {ref}~{n}", hint="use e.g. current~1")
    if ref == CURRENT:
        gid = current(home) or ids[-1]
    elif ref == "anchor":
        gid = ids[0]
        gid = read_lineage(home, gid).anchor or gid
    elif ref.isdigit():
        gid = gen_id(int(ref))
    elif ref in ids:
        gid = ref
    else:
        matches = [i for i in ids if i.startswith(ref)]
        if len(matches) != 1:
            raise NotFound(f"no generation {ref!r}", hint=f"known: {', '.join(ids)}")
        gid = matches[0]
    if gid not in ids:
        raise NotFound(f"no generation {gid}", hint=f"known: {', '.join(ids)}")
    for _ in range(back):
        parent = read_lineage(home, gid).parent
        if not parent:
            raise NotFound(f"{gid} has no parent")
        gid = parent
    return gid


def next_id(home: Home) -> str:
    ids = generation_ids(home)
    return gen_id(gen_number(ids[-1]) + 1 if ids else 0)

