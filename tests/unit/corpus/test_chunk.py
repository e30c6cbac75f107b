"""Chunkers: markdown by headings, Python by functions, long text windowed."""

from __future__ import annotations


def test_markdown_chunks_follow_headings():
    from soulctl.corpus.chunk import chunk_file

    text = "# River\n\nThe river runs.\n\n## Delta\n\nIt fans out into the sea.\n"
    chunks = chunk_file("notes/river.md", text)
    assert [c.heading for c in chunks][-1].endswith("Delta")
    assert all(c.path == "notes/river.md" for c in chunks)
    delta = chunks[-1]
    assert "fans out" in delta.text and delta.start <= 5 <= delta.end


def test_python_chunks_follow_functions():
    from soulctl.corpus.chunk import chunk_file

    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    text = f"import os\n\n\ndef alpha():\n{body}\n    return 1\n\n\ndef beta():\n{body}\n    return 2\n"
    chunks = chunk_file("mod.py", text)
    headings = [c.heading for c in chunks]
    assert any("alpha" in h for h in headings) and any("beta" in h for h in headings)
    beta = next(c for c in chunks if "beta" in c.heading)
    assert text.splitlines()[beta.start - 1].startswith("def beta")


def test_long_text_is_windowed_with_overlap():
    from soulctl.corpus.chunk import chunk_file

    text = "\n".join(f"Line {i}: the heron counted fish by the mill pond." for i in range(200))
    chunks = chunk_file("long.txt", text)
    assert len(chunks) > 3 and all(len(c.text) <= 1200 for c in chunks)
    assert all(b.start <= a.end for a, b in zip(chunks, chunks[1:]))  # overlapping windows
