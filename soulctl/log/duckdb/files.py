"""The files a DuckDB log keeps on this machine, named without opening it (the budget counts
them, `init` removes them when it fails half-way, outputs may never overwrite them)."""

from __future__ import annotations

from pathlib import Path


def local_files(path: Path, index_dir: Path) -> list[Path]:
    return [path, path.with_name(path.name + ".lock"), path.with_name(path.name + ".wal"),
            path.with_name(path.name + ".memory"), index_dir]
