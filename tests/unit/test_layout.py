"""The layout table of docs/architecture.md matches the tree: every module of soulctl/ is
named in it, and every module it names exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def layout_rows() -> list[tuple[str, str]]:
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text[text.index("## Layout"):]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `soulctl/"):
            where, what = line.split(" | ", 1)
            rows.append((where.strip("| "), what))
    return rows


def named_modules() -> set[str]:
    """Paths relative to soulctl/ that the table names."""
    names = set()
    for where, what in layout_rows():
        first = re.match(r"`soulctl/([^`]*)`", where).group(1)
        folder = first if first.endswith("/") else ""
        if not folder:  # a row of top-level modules: `soulctl/a.py`, `b.py`, …
            names |= set(re.findall(r"`(?:soulctl/)?([a-z_]+\.py)`", where))
        for name in re.findall(r"`([a-z_/]+\.py)`|\b([a-z_]+\.py)\b", what):
            name = name[0] or name[1]
            names.add(name if "/" in name else folder + name)
    return names


def test_every_module_is_in_the_layout_and_every_named_one_exists():
    package = REPO / "soulctl"
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    named = named_modules()
    assert sorted(modules - named) == []  # a module the table does not name
    assert sorted(n for n in named if not (package / n).is_file()) == []  # a name with no module
