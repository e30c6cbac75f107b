"""soulctl gen ls / show / verify on a real generation 0."""

from __future__ import annotations

import os

from conftest import flip_byte, soulctl, unshare


def test_gen_ls_lists_generation_zero(gen0_home):
    result = soulctl("gen", "ls", "--home", gen0_home)
    assert result.code == 0, result
    assert result.stdout.splitlines()[1].startswith("gen-0000")
    rows = soulctl("gen", "ls", "--json", "--home", gen0_home).json_lines()
    assert rows[0]["id"] == "gen-0000" and rows[0]["parent"] is None
    assert rows[0]["layers"] == 0 and rows[0]["current"] is True
    assert soulctl("-q", "gen", "ls", "--home", gen0_home).stdout == "gen-0000\n"


def test_gen_ls_finds_the_home_from_a_subdirectory(gen0_home):
    result = soulctl("gen", "ls", "-q", cwd=gen0_home / "recipes")
    assert result.stdout == "gen-0000\n", result


def test_gen_show_resolves_references(gen0_home):
    for ref in ("gen-0000", "0", "current", "anchor"):
        record = soulctl("gen", "show", ref, "--json", "--home", gen0_home).json()
        assert record["id"] == "gen-0000"
        assert "model.safetensors" in record["manifest"]
    human = soulctl("gen", "show", "--home", gen0_home)
    assert "model.safetensors" in human.stdout and "anchor:   gen-0000" in human.stdout


def test_gen_show_unknown_generation(gen0_home):
    result = soulctl("gen", "show", "gen-0042", "--home", gen0_home)
    assert result.code == 3 and "no generation" in result.stderr and result.stdout == ""


def test_verify_passes_on_a_fresh_generation(gen0_home):
    result = soulctl("gen", "verify", "--home", gen0_home)
    assert result.code == 0 and "gen-0000  ok" in result.stdout, result


def _writable(path):
    os.chmod(path.parent, 0o755)
    if path.exists():
        unshare(path)  # a hard link into the shared home: change a private copy


def test_verify_detects_a_flipped_byte(home):
    weights = home / "generations/gen-0000/model.safetensors"
    _writable(weights)
    flip_byte(weights, 10_000_000, 0x01)
    result = soulctl("gen", "verify", "--home", home)
    assert result.code == 1
    assert "modified: model.safetensors" in result.stdout
    assert "failed verification" in result.stderr
    record = soulctl("gen", "verify", "gen-0000", "--json", "--home", home).json()
    assert record["ok"] is False and record["modified"] == ["model.safetensors"]


def test_verify_detects_a_missing_file(home):
    target = home / "generations/gen-0000/tokenizer.json"
    _writable(target)
    target.unlink()
    result = soulctl("gen", "verify", "--json", "--home", home)
    assert result.code == 1
    assert result.json()["missing"] == ["tokenizer.json"]


def test_verify_detects_an_extra_file(home):
    gen = home / "generations/gen-0000"
    _writable(gen / "config.json")
    (gen / "sneaky.bin").write_bytes(b"\0")
    result = soulctl("gen", "verify", "--home", home)
    assert result.code == 1 and "extra:    sneaky.bin" in result.stdout


def test_commands_outside_a_home_explain_how_to_make_one(tmp_path):
    result = soulctl("gen", "ls", cwd=tmp_path)
    assert result.code == 3
    assert "soulctl init" in result.stderr and result.stdout == ""
