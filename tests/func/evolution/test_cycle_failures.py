"""A step that fails ends the cycle logged and typed; a reply that opens its session never
reaches a buffer."""

from __future__ import annotations
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
import pytest
from conftest import BASE_ENV, REPO, copy_home, refused, soulctl


def test_a_failing_step_ends_the_cycle_logged_and_typed(gen0_home, tmp_path):
    home = copy_home(gen0_home, tmp_path / "home")
    conversation = REPO / "scripts" / "demo-conversation.jsonl"
    assert soulctl("log", "add", "--jsonl", "--home", home, input=conversation.read_text()).code == 0
    recipes = home / "recipes"
    (recipes / "resonate.yaml").write_text((recipes / "resonate.yaml").read_text()
                                           .replace("min_examples: 6", "min_examples: 2"))
    (recipes / "dream.yaml").write_text((recipes / "dream.yaml").read_text()
                                        .replace("[q_proj, k_proj, v_proj]", "[q_proj, nosuch_proj]"))
    result = soulctl("evolve", "--json", "--home", home, timeout=900)
    refused(result, 5, "has no module(s) nosuch_proj")
    record = soulctl("log", "ls", "--session", "evolve", "--json", "--home", home).json_lines()[0]
    assert record["meta"]["evolve"]["status"] == "failed" and record["meta"]["evolve"]["step"] == "dream"
    assert "dream failed" in record["prose"]
    assert (home / "generations" / "current").resolve().name == "gen-0000"


def test_a_reply_that_opens_its_session_never_reaches_a_buffer(home):
    opener = {"prose": "Good morning. The herons are back on the mill pond.", "role": "soul", "session": "o"}
    rows = [opener] + [{"prose": p, "role": r, "session": "o"} for p, r in (
        ("What do they eat?", "user"), ("Mostly small fish and frogs from the shallows.", "soul"))]
    assert soulctl("log", "add", "--jsonl", "--home", home,
                   input="\n".join(json.dumps(r) for r in rows) + "\n").code == 0
    listed = soulctl("log", "ls", "--role", "soul", "--reverse", "-q", "--home", home).stdout.split()
    for pid in listed:
        assert soulctl("resonate", "mark", pid, "0.95", "--home", home).code == 0
    result = soulctl("resonate", "buffer", "--json", "--home", home)
    assert result.code == 0, result
    record = result.json()
    assert record["examples"] == 1 and record["dropped_unprompted"] == 1
    assert record["log_ids"] == [listed[1]]
    first = json.loads(Path(record["path"]).read_text().splitlines()[0])
    assert first["messages"][0]["role"] == "user"
    # a hand-made buffer that does it anyway is refused before any model loads
    bad = home / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}) + "\n")
    refused(soulctl("dream", str(bad), "--home", home), 5, "bad.jsonl:1: the reply answers no user message")
