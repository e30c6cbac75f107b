"""Chunking along structure: Markdown and reStructuredText headings, Python functions and
classes (by `ast`), function-like lines in other code, notebook cells, paragraphs elsewhere.
Each chunk keeps its path, 1-based line range and heading; long sections are windowed with
an overlap of a few lines."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

MAX_CHARS = 1000  # all-MiniLM-L6-v2 reads 256 word pieces: about this much English
OVERLAP_CHARS = 150
CHUNKER_ID = f"structure-v1(max={MAX_CHARS},overlap={OVERLAP_CHARS})"

MARKDOWN = {".md", ".markdown", ".mdx"}
REST = {".rst", ".rest"}
PYTHON = {".py", ".pyi"}
CODE = {".js", ".jsx", ".ts", ".tsx", ".go", ".rs", ".java", ".kt", ".c", ".h", ".cc", ".cpp",
        ".hpp", ".cs", ".rb", ".php", ".swift", ".scala", ".sh", ".bash", ".zsh", ".lua", ".r",
        ".jl", ".m", ".sql", ".ex", ".exs", ".hs", ".clj", ".dart", ".zig", ".nim"}


@dataclass
class Chunk:
    path: str
    start: int  # first line, 1-based
    end: int  # last line, inclusive
    heading: str
    text: str

    def embed_text(self) -> str:
        """What the embedder and BM25 see: where it is, then what it says."""
        head = f"{self.path}" + (f" — {self.heading}" if self.heading else "")
        return f"{head}\n{self.text}"


def chunk_file(rel: str, text: str) -> list[Chunk]:
    suffix = ("." + rel.rsplit(".", 1)[-1].lower()) if "." in rel.rsplit("/", 1)[-1] else ""
    lines = text.splitlines()
    if suffix in MARKDOWN:
        sections = _markdown_sections(lines)
    elif suffix in REST:
        sections = _rest_sections(lines)
    elif suffix in PYTHON:
        sections = _python_sections(text, lines)
    elif suffix in CODE:
        sections = _code_sections(lines)
    elif suffix == ".ipynb":
        return _notebook_chunks(rel, text)
    else:
        sections = [(1, len(lines), "")]
    chunks = []
    for start, end, heading in sections:
        chunks += _windows(rel, lines, start, end, heading)
    return chunks


def _windows(rel: str, lines: list[str], start: int, end: int, heading: str) -> list[Chunk]:
    """Split lines start..end into chunks of at most MAX_CHARS, preferring blank lines as
    breaks and repeating about OVERLAP_CHARS of lines between neighbours."""
    out: list[Chunk] = []
    i = start
    while i <= end:
        size, j, last_blank = 0, i, None
        while j <= end:
            length = len(lines[j - 1]) + 1
            if size + length > MAX_CHARS and j > i:
                break
            size += length
            if not lines[j - 1].strip() and size > MAX_CHARS * 0.6:
                last_blank = j
            j += 1
        stop = j - 1 if j > end else (last_blank or j - 1)
        body = "\n".join(lines[i - 1:stop])
        if body.strip():
            first, last = _trim(lines, i, stop)
            out.append(Chunk(rel, first, last, heading, "\n".join(lines[first - 1:last])))
        if stop >= end:
            break
        back, k = 0, stop
        while k > i and back + len(lines[k - 1]) + 1 <= OVERLAP_CHARS:
            back += len(lines[k - 1]) + 1
            k -= 1
        i = max(k + 1, i + 1) if k < stop else stop + 1
    return out


def _trim(lines: list[str], first: int, last: int) -> tuple[int, int]:
    while first < last and not lines[first - 1].strip():
        first += 1
    while last > first and not lines[last - 1].strip():
        last -= 1
    return first, last


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _markdown_sections(lines: list[str]) -> list[tuple[int, int, str]]:
    starts: list[tuple[int, str]] = []
    path: list[str] = []
    fence = None
    for n, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            marker = stripped[:3]
            fence = None if fence == marker else (fence or marker)
            continue
        if fence:
            continue
        match = _MD_HEADING.match(line)
        if match:
            level = len(match.group(1))
            path = path[:level - 1] + [match.group(2)]
            starts.append((n, " > ".join(p for p in path if p)))
    return _sections_from(starts, len(lines))


_REST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")


def _rest_sections(lines: list[str]) -> list[tuple[int, str]]:
    starts = []
    levels: list[str] = []
    path: list[str] = []
    for n in range(2, len(lines) + 1):
        title, under = lines[n - 2], lines[n - 1]
        if title.strip() and _REST_UNDERLINE.match(under) and len(under.strip()) >= len(title.strip()):
            char = under.strip()[0]
            if char not in levels:
                levels.append(char)
            level = levels.index(char)
            path = path[:level] + [title.strip()]
            starts.append((n - 1, " > ".join(path)))
    return _sections_from(starts, len(lines))


def _sections_from(starts: list[tuple[int, str]], total: int) -> list[tuple[int, int, str]]:
    if total == 0:
        return []
    sections = []
    if not starts or starts[0][0] > 1:
        sections.append((1, (starts[0][0] - 1) if starts else total, ""))
    for idx, (line, heading) in enumerate(starts):
        end = starts[idx + 1][0] - 1 if idx + 1 < len(starts) else total
        sections.append((line, end, heading))
    return [s for s in sections if s[1] >= s[0]]


def _python_sections(text: str, lines: list[str]) -> list[tuple[int, int, str]]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return _code_sections(lines)
    marks: list[tuple[int, int, str]] = []
    classes: list[tuple[int, int, str]] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            kind = "class" if isinstance(node, ast.ClassDef) else "def"
            if isinstance(node, ast.ClassDef):
                methods = [m for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
                head_end = (min([methods[0].lineno] + [d.lineno for d in methods[0].decorator_list]) - 1
                            if methods else node.end_lineno)
                marks.append((first, head_end, f"class {node.name}"))
                classes.append((first, node.end_lineno, f"class {node.name}"))
                for m in methods:
                    m_first = min([m.lineno] + [d.lineno for d in m.decorator_list])
                    marks.append((m_first, m.end_lineno, f"class {node.name} > def {m.name}"))
            else:
                marks.append((first, node.end_lineno, f"{kind} {node.name}"))
    def gap_heading(line: int) -> str:
        return next((name for a, b, name in classes if a <= line <= b), "module")

    sections, cursor = [], 1
    for first, last, heading in sorted(marks):
        if first > cursor:
            sections.append((cursor, first - 1, gap_heading(cursor)))
        sections.append((first, max(first, last), heading))
        cursor = max(cursor, last + 1)
    if cursor <= len(lines):
        sections.append((cursor, len(lines), "module"))
    sections = [s for s in sections if any(lines[i - 1].strip() for i in range(s[0], s[1] + 1))]
    return _merge_small(sections, lines)


def _merge_small(sections: list[tuple[int, int, str]], lines: list[str]) -> list[tuple[int, int, str]]:
    """Fold a tiny section (a class line, a lone comment) into the section that follows it."""
    out: list[tuple[int, int, str]] = []
    carry = None
    for start, end, heading in sections:
        if carry is not None:
            start = carry
            carry = None
        size = sum(len(lines[i - 1]) + 1 for i in range(start, end + 1))
        if size < 120 and (start, end) != (sections[-1][0], sections[-1][1]):
            carry = start
            continue
        out.append((start, end, heading))
    if carry is not None:
        out.append((carry, sections[-1][1], sections[-1][2]))
    return out


_CODE_START = re.compile(
    r"^(export\s+|pub(\([a-z]+\))?\s+|public\s+|private\s+|protected\s+|static\s+|async\s+|default\s+)*"
    r"(function\*?|class|def|fn|func|impl|interface|trait|struct|enum|module|type|object|"
    r"CREATE\s+(TABLE|VIEW|FUNCTION))\b", re.IGNORECASE)


def _code_sections(lines: list[str]) -> list[tuple[int, int, str]]:
    starts = [(n, line.strip()[:80]) for n, line in enumerate(lines, 1) if _CODE_START.match(line)]
    return _sections_from(starts, len(lines))


def _notebook_chunks(rel: str, text: str) -> list[Chunk]:
    try:
        cells = json.loads(text).get("cells", [])
    except (json.JSONDecodeError, AttributeError):
        return _windows(rel, text.splitlines(), 1, len(text.splitlines()), "")
    chunks = []
    for number, cell in enumerate(cells, 1):
        if cell.get("cell_type") not in ("markdown", "code"):
            continue
        source = cell.get("source", "")
        body = "".join(source) if isinstance(source, list) else str(source)
        cell_lines = body.splitlines()
        sections = (_markdown_sections(cell_lines) if cell["cell_type"] == "markdown"
                    else [(1, len(cell_lines), "")])
        for start, end, heading in sections:
            label = f"cell {number}" + (f" > {heading}" if heading else "")
            chunks += _windows(rel, cell_lines, start, end, label)
    return chunks
