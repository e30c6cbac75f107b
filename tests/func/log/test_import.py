"""`log import` (issue 39): each format's export, written here from the tool's published shape —
tree branches, edits, attachments, unicode, empty messages — imported end to end: counts,
times, roles, sessions and ids exact; a second import adds nothing; a fact stated in each is
found by `log search`; a bad file changes nothing; a killed import resumes."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import BASE_ENV, REPO, refused, soulctl

T0 = 1_717_000_000  # 2024-05-29T16:26:40Z


def chatgpt(tmp: Path) -> Path:
    """Two conversations; the first was edited, so its mapping has two branches (the one that
    ends at current_node is the conversation); an image part; an empty system message."""
    def node(nid, parent, children, role=None, parts=None, t=None):
        message = None if role is None else {
            "id": nid, "author": {"role": role}, "create_time": t,
            "content": {"content_type": "multimodal_text" if any(isinstance(p, dict) for p in parts) else "text",
                        "parts": parts}}
        return {"id": nid, "parent": parent, "children": children, "message": message}

    first = {"title": "Dogs", "create_time": T0, "conversation_id": "c-dogs", "current_node": "m4", "mapping": {
        "root": node("root", None, ["sys"]),
        "sys": node("sys", "root", ["m1"], "system", [""], T0),
        "m1": node("m1", "sys", ["m2", "m2b"], "user", ["My dog is a beagle called Biscuit 🐶."], T0 + 1),
        "m2b": node("m2b", "m1", [], "assistant", ["(a regenerated reply, not the one kept)"], T0 + 2),
        "m2": node("m2", "m1", ["m3"], "assistant", ["Biscuit is a lovely name."], T0 + 3),
        "m3": node("m3", "m2", ["m4"], "user", ["Here is his photo.", {"content_type": "image_asset_pointer",
                                                                       "asset_pointer": "file-service://x"}], T0 + 4),
        "m4": node("m4", "m3", [], "assistant", ["What a handsome dog."], T0 + 5)}}
    second = {"title": "Naïve café", "create_time": T0 + 100, "id": "c-cafe", "current_node": "n2", "mapping": {
        "n1": node("n1", None, ["n2"], "user", ["Der Kaffee im Café Größe ist gut."], T0 + 100),
        "n2": node("n2", "n1", [], "assistant", ["Schön!"], T0 + 101)}}
    path = tmp / "chatgpt-export.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("conversations.json", json.dumps([first, second], ensure_ascii=False))
        z.writestr("user.json", "{}")
    return path


def claude(tmp: Path) -> Path:
    conv = {"uuid": "cl-1", "name": "Trip", "created_at": "2024-06-01T09:00:00Z", "chat_messages": [
        {"uuid": "u1", "sender": "human", "text": "My sister Ines lives in Tromsø.", "created_at": "2024-06-01T09:00:00Z",
         "attachments": [], "files": []},
        {"uuid": "a1", "sender": "assistant", "text": "", "content": [{"type": "text", "text": "Tromsø is far north."}],
         "created_at": "2024-06-01T09:00:05.123Z"},
        {"uuid": "u2", "sender": "human", "text": "", "created_at": "2024-06-01T09:01:00Z",
         "attachments": [{"file_name": "ticket.pdf", "extracted_content": "..."}], "files": []},
        {"uuid": "u3", "sender": "human", "text": "   ", "created_at": "2024-06-01T09:02:00Z"}]}  # empty: left out
    path = tmp / "conversations.json"
    path.write_text(json.dumps([conv]))
    return path


def llm_db(tmp: Path) -> Path:
    path = tmp / "logs.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE conversations (id TEXT PRIMARY KEY, name TEXT, model TEXT)")
    db.execute("CREATE TABLE responses (id TEXT PRIMARY KEY, model TEXT, prompt TEXT, system TEXT, response TEXT, "
               "conversation_id TEXT, datetime_utc TEXT)")
    db.execute("INSERT INTO conversations VALUES ('01conv', 'deadline', 'gpt-4o-mini')")
    db.executemany("INSERT INTO responses VALUES (?, ?, ?, NULL, ?, '01conv', ?)", [
        ("r1", "gpt-4o-mini", "The grant deadline is 3 March.", "Noted: 3 March.", "2024-07-01T10:00:00"),
        ("r2", "gpt-4o-mini", "Remind me what it is?", "It is 3 March.", "2024-07-01T10:05:00")])
    db.commit()
    db.close()
    return path


def openwebui(tmp: Path) -> Path:
    chats = [{"id": "ow-1", "title": "Allergies", "created_at": T0 + 200, "chat": {"messages": [
        {"id": "w1", "role": "user", "content": "I'm allergic to penicillin.", "timestamp": T0 + 200},
        {"id": "w2", "role": "assistant", "content": "Thanks, I'll remember.", "timestamp": (T0 + 201) * 1000,
         "model": "llama3.1:8b"}]}}]
    path = tmp / "openwebui-export.json"
    path.write_text(json.dumps(chats))
    return path


def sillytavern(tmp: Path) -> Path:
    lines = [{"user_name": "Lena", "character_name": "Seraphina", "create_date": "2024-03-14@10h22m33s"},
             {"name": "Lena", "is_user": True, "send_date": "March 14, 2024 10:22am", "mes": "Our flat is on the fourth floor."},
             {"name": "Seraphina", "is_user": False, "send_date": "March 14, 2024 10:23am", "mes": "A view, then!",
              "swipes": ["A view, then!", "Many stairs!"]},
             {"name": "System", "is_system": True, "send_date": "March 14, 2024 10:24am", "mes": "(note)"}]
    path = tmp / "Seraphina - 2024-03-14.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


FORMATS = {  # maker, turns imported, conversations, a fact stated, its words searched for
    "chatgpt": (chatgpt, 6, 2, "beagle called Biscuit"),
    "claude": (claude, 3, 1, "sister Ines lives in Tromsø"),
    "llm": (llm_db, 4, 1, "grant deadline is 3 March"),
    "openwebui": (openwebui, 2, 1, "allergic to penicillin"),
    "sillytavern": (sillytavern, 2, 1, "flat is on the fourth floor"),
}


def packets(home, session_prefix: str) -> list[dict]:
    rows = soulctl("--home", home, "--json", "log", "ls", "-n", "0", "--reverse").json_lines()
    return [r for r in rows if r["session"].startswith(session_prefix + ":")]


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_imports_whole_once_and_is_searchable(home, tmp_path, name):
    make, turns, conversations, fact = FORMATS[name]
    source = make(tmp_path)
    planned = soulctl("--home", home, "--json", "log", "import", source, "--dry-run", "--as-user", "Lena").json()
    assert planned["format"] == name and planned["imported"] == turns and planned["dry_run"] is True
    assert packets(home, name) == []  # the dry run wrote nothing
    done = soulctl("--home", home, "--json", "log", "import", source, "--as-user", "Lena")
    assert done.code == 0, done
    summary = done.json()
    assert (summary["imported"], summary["conversations"], summary["present"]) == (turns, conversations, 0)
    rows = packets(home, name)
    assert len(rows) == turns and {r["role"] for r in rows} <= {"user", "peer"}
    assert all(r["meta"]["source"]["format"] == name for r in rows)
    assert all(r["meta"]["speaker"] == "Lena" for r in rows if r["role"] == "user")
    again = soulctl("--home", home, "--json", "log", "import", source).json()
    assert again["imported"] == 0 and again["present"] == turns and len(packets(home, name)) == turns
    hits = soulctl("--home", home, "--json", "log", "search", fact, "-k", "3").json_lines()
    assert any(fact in h["prose"] and h["session"].startswith(name + ":") for h in hits), hits


def test_chatgpt_keeps_the_branch_that_was_kept_with_its_times_and_notes_what_it_left(home, tmp_path):
    source = chatgpt(tmp_path)
    summary = soulctl("--home", home, "--json", "log", "import", source).json()
    assert summary["alternates_skipped"] == 1 and summary["attachments"] == 1
    rows = packets(home, "chatgpt")
    dogs = [r for r in rows if r["session"] == "chatgpt:c-dogs"]
    assert [r["prose"] for r in dogs] == ["My dog is a beagle called Biscuit 🐶.", "Biscuit is a lovely name.",
                                          "Here is his photo.", "What a handsome dog."]
    assert [r["role"] for r in dogs] == ["user", "peer", "user", "peer"]
    assert dogs[0]["ts"].startswith("2024-05-29T16:26:41") and dogs[3]["ts"].startswith("2024-05-29T16:26:45")
    assert dogs[2]["meta"]["attachments"] == ["image_asset_pointer"] and dogs[0]["meta"]["source"]["id"] == "m1"
    assert dogs[1]["meta"]["speaker"] == "ChatGPT" and dogs[0]["meta"]["alternates_skipped"] == 1
    cafe = [r["prose"] for r in rows if r["session"] == "chatgpt:c-cafe"]
    assert cafe == ["Der Kaffee im Café Größe ist gut.", "Schön!"]
    claude_rows = (soulctl("--home", home, "log", "import", claude(tmp_path)), packets(home, "claude"))[1]
    assert claude_rows[2]["prose"] == "[ticket.pdf]" and claude_rows[2]["meta"]["attachments"] == ["ticket.pdf"]
    assert claude_rows[1]["prose"] == "Tromsø is far north." and claude_rows[1]["ts"].startswith("2024-06-01T09:00:05.123")


def test_since_and_the_format_named(home, tmp_path):
    source = llm_db(tmp_path)
    later = soulctl("--home", home, "--json", "log", "import", source, "--format", "llm", "--since", "2024-07-01T10:01:00Z")
    assert later.json()["imported"] == 2 and later.json()["before_since"] == 2
    refused(soulctl("--home", home, "log", "import", source, "--format", "nosuch"), 5, "unknown import format")
    refused(soulctl("--home", home, "log", "import", tmp_path / "missing.json"), 3, "no such file")
    plain = tmp_path / "notes.txt"
    plain.write_text("just some words\n")
    refused(soulctl("--home", home, "log", "import", plain), 5, "not a conversation export")


def test_a_truncated_or_malformed_file_names_where_and_changes_nothing(home, tmp_path):
    whole = claude(tmp_path).read_text()
    before = soulctl("--home", home, "--json", "log", "ls", "-n", "0").json_lines()
    cut = tmp_path / "cut.json"
    cut.write_text(whole[: len(whole) * 2 // 3])
    refused(soulctl("--home", home, "log", "import", cut, "--format", "claude"), 5, f"{cut}: ")
    result = soulctl("--home", home, "log", "import", cut, "--format", "claude")
    assert "character" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text(sillytavern(tmp_path).read_text().replace('"mes": "A view', '"mes": A view'))
    refused(soulctl("--home", home, "log", "import", broken, "--format", "sillytavern"), 5, "line 3")
    assert soulctl("--home", home, "--json", "log", "ls", "-n", "0").json_lines() == before


def test_a_killed_import_resumes_with_nothing_twice_and_nothing_missing(home, tmp_path):
    convs = [{"uuid": f"c{i}", "name": f"c{i}", "created_at": "2024-06-01T09:00:00Z", "chat_messages": [
        {"uuid": f"c{i}-{j}", "sender": "human" if j % 2 == 0 else "assistant",
         "text": f"Conversation {i}, message {j}: the heron stood by the mill pond.",
         "created_at": f"2024-06-01T09:{j:02d}:00Z"} for j in range(40)]} for i in range(60)]
    source = tmp_path / "big.json"
    source.write_text(json.dumps(convs))
    proc = subprocess.Popen([sys.executable, "-m", "soulctl", "--home", str(home), "log", "import", str(source)],
                            env=BASE_ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # killed once some batches are in
        if len(packets(home, "claude")) >= 512:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    partial = len(packets(home, "claude"))
    assert 0 < partial < 2400 or proc.returncode == 0
    rest = soulctl("--home", home, "--json", "log", "import", source).json()
    assert rest["present"] == partial and rest["imported"] == 2400 - partial
    rows = packets(home, "claude")
    assert len(rows) == 2400 and len({r["meta"]["source"]["id"] for r in rows}) == 2400
