"""The inference backends on the embedded SmolLM2: llamacpp, transformers and mlx in process,
openai against llama-cpp-python's own OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import BASE_ENV, refused, soulctl
from tests.func.terminal import Terminal

PROMPT = [{"role": "system", "content": "You are a helpful assistant."},
          {"role": "user", "content": "What is a river?"}]


def set_role(home: Path, **fields) -> None:
    path = home / "soul.yaml"
    data = yaml.safe_load(path.read_text())
    data["roles"]["soul"].update(fields)
    path.write_text(yaml.safe_dump(data))


def open_engine(home: Path, backend: str | None = None):
    from soulctl.engine import open_engine as open_
    from soulctl.home import Home

    return open_(Home(home), "soul", backend=backend)


def test_local_backends_answer_the_same_prompt_through_one_interface(home):
    engines = {b: open_engine(home, b) for b in ("llamacpp", "transformers", "mlx")}
    counts = set()
    for backend, engine in engines.items():
        assert engine.name == backend
        assert engine.context_length == 8192 and engine.generation == "gen-0000"
        reply = engine.chat(PROMPT, max_tokens=12)
        assert len(reply.split()) >= 3 and "river" in reply.lower(), (backend, reply)
        pieces = list(engine.stream(PROMPT, max_tokens=12))
        assert len(pieces) > 1 and "".join(pieces).strip() == reply, (backend, pieces)
        # the same tokenizer and chat template, counted by each backend's own machinery
        counts.add((engine.count_tokens("The keeper winds the lamp at 21:40."),
                    engine.count_chat_tokens(PROMPT)))
        cut = engine.truncate("The quick brown fox jumps over the lazy dog", 4)
        assert engine.count_tokens(cut) <= 4 and "The quick brown fox".startswith(cut.strip())
        probs = engine.choice_probs(PROMPT, "Score: ", ["1", "2", "3"])
        assert abs(sum(probs) - 1) < 1e-6 and all(p > 0 for p in probs)
    assert len(counts) == 1, counts
    # a prompt that cannot fit is refused before anything is generated
    huge = [{"role": "user", "content": "river " * 9000}]
    with pytest.raises(Exception, match="exceeds the context"):
        engines["llamacpp"].chat(huge, max_tokens=8)


def test_auto_serves_generation_0_on_llama_cpp_from_its_bundled_gguf(home):
    engine = open_engine(home)
    assert engine.name == "llamacpp"  # the fastest backend this machine has
    record = json.loads((home / "generations/.derived/gen-0000/derived.json").read_text())
    lineage = json.loads((home / "generations/gen-0000/lineage.json").read_text())
    assert record["kind"] == "source" and record["sha256"] == lineage["source"]["sha256"]
    assert Path(record["path"]) == engine.path
    result = soulctl("chat", "--session", "auto", "--json", "--home", home, input="What is a river?\n")
    assert result.code == 0, result
    soul = soulctl("log", "show", result.json()["reply_id"], "--json", "--home", home).json()
    assert soul["meta"]["backend"] == "llamacpp" and soul["generation"] == "gen-0000"


def test_an_hf_directory_is_converted_once_and_recorded(home, tmp_path):
    plain = tmp_path / "plain-hf"
    plain.mkdir()
    for f in (home / "generations/gen-0000").iterdir():
        if f.name != "lineage.json":
            (plain / f.name).write_bytes(f.read_bytes())
    set_role(home, backend="llamacpp", model=str(plain), quant="q8_0")
    engine = open_engine(home)
    records = list((home / "data/gguf").glob("*/derived.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    gguf = records[0].parent / record["file"]
    assert engine.path == gguf and record["kind"] == "conversion" and record["outtype"] == "q8_0"
    assert "convert_hf_to_gguf.py" in record["converter"]
    from soulctl.generations import sha256_file

    assert record["sha256"] == sha256_file(gguf) and record["bytes"] == gguf.stat().st_size
    assert "river" in engine.chat(PROMPT, max_tokens=12).lower()
    before = gguf.stat().st_mtime_ns
    assert open_engine(home).path == gguf and gguf.stat().st_mtime_ns == before  # cached


def start_llama_server(tmp_path_factory, *extra: str):
    """llama-cpp-python's OpenAI-compatible server for the bundled GGUF on a free loopback
    port: (url, process)."""
    from soulctl.generations.base import bundled_gguf

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_gguf()),
                                 "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", *extra],
                                stdout=fh, stderr=subprocess.STDOUT, env=BASE_ENV)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=2).read()
            return url, proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)


def stop(proc) -> None:
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def llama_server(gen0_home, tmp_path_factory):
    url, proc = start_llama_server(tmp_path_factory)
    yield url
    stop(proc)


def test_openai_backend_against_llama_cpp_server(home, llama_server):
    set_role(home, backend="openai", url=llama_server, context=2048)
    engine = open_engine(home)
    local = open_engine(home, "llamacpp")
    assert engine.name == "openai" and engine.context_length == 2048
    # the server's own tokenizer: counts match the in-process ones
    text = "The keeper winds the lamp at 21:40."
    assert engine.count_tokens(text) == local.count_tokens(text)
    assert engine.count_chat_tokens(PROMPT) >= local.count_chat_tokens(PROMPT)  # never an undercount
    reply = engine.chat(PROMPT, max_tokens=12)
    assert "river" in reply.lower()
    assert "".join(engine.stream(PROMPT, max_tokens=12)).strip() == reply
    data = yaml.safe_load((home / "soul.yaml").read_text())  # sectors that fit 2048 tokens
    data["memory"].update(self_tokens=256, notebook_tokens=256, retrieved_tokens=256, window_tokens=768)
    (home / "soul.yaml").write_text(yaml.safe_dump(data))
    result = soulctl("chat", "--session", "remote", "--home", home, input="What is a river?\n")
    assert result.code == 0 and result.stdout.strip(), result
    rows = soulctl("log", "ls", "--session", "remote", "--json", "--home", home).json_lines()
    soul, user = rows
    assert soul["parent"] == user["id"] and soul["meta"]["backend"] == "openai"
    assert soul["meta"]["prompt_tokens"] + 512 <= 2048


def test_backend_errors_name_the_fix(home, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text("import sys\nsys.modules['mlx_lm'] = None\n")
    set_role(home, backend="mlx")
    refused(soulctl("chat", "hello", "--home", home, env={"PYTHONPATH": str(blocked)}, process=True), 6,
            "mlx-lm is not installed")
    set_role(home, backend="transformers", model=str(tmp_path / "missing"))
    refused(soulctl("chat", "hello", "--home", home), 3, "does not exist")
    set_role(home, backend="transformers", model=str(tmp_path / "blocked"))
    refused(soulctl("chat", "hello", "--home", home), 5, "not an HF model directory")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    set_role(home, backend="openai", url=f"http://127.0.0.1:{port}/v1", model="generations/current")
    refused(soulctl("chat", "hello", "--home", home), 7, "cannot reach the model server")
    set_role(home, backend="openai", url="not a url")
    refused(soulctl("chat", "hello", "--home", home), 5, "bad server URL")
    rows = soulctl("log", "ls", "--json", "--home", home).json_lines()
    assert rows == []  # nothing logged by a turn that never ran


def test_repl_streams_and_takes_slash_commands(home):
    """The conversation on a real terminal (a pty): streamed replies and slash commands; a
    slash command's mistake does not end the conversation."""
    standin = Path(__file__).resolve().parents[1] / "standin"  # a stand-in `claude` for /hands
    data = yaml.safe_load((home / "soul.yaml").read_text())
    data["memory"]["self_tokens"] = 128  # a short self-definition to rewrite
    (home / "soul.yaml").write_text(yaml.safe_dump(data))
    term = Terminal("chat", "--session", "tty", "--home", home, cwd=home,
                    env={"PATH": f"{standin}{os.pathsep}{BASE_ENV.get('PATH', '')}"})
    try:
        term.expect(b"you> ")
        term.send(b"What is a river?\n")
        reply = term.reply()
        assert reply, term.seen
        term.send(b"/resonate 0.9\n")
        term.expect(b"marked the last reply at 0.9")
        # mistakes print their one line and the conversation goes on
        term.send(b"/mount nosuch\n")
        term.expect(b"error: ")
        term.expect(b"nosuch")
        term.send(b"/resonate abc\n")
        term.expect(b"error: /resonate takes a score in [0, 1], not 'abc'")
        term.send(b"/bogus\n")
        term.expect(b"error: unknown command /bogus")
        term.send(b"Name one river.\n")
        assert term.reply(), term.seen
        term.send(b"/notebook\n")
        term.expect(b"(empty)")
        term.send(b"/flush\n")
        term.expect(b"window flushed")
        term.send(b"/self You are patient.\n")
        term.expect(b"written by the soul")
        term.send(b"/hands Write HANDS.md\n")
        term.expect(b"Done: wrote HANDS.md for packet")
        term.expect(b"you> ")
        term.send(b"/quit\n")
        assert term.close() == 0
    finally:
        term.close()
    rows = soulctl("log", "ls", "--session", "tty", "--json", "--home", home).json_lines()
    kinds = [(r["role"], (r["meta"] or {}).get("kind")) for r in reversed(rows)]
    assert kinds[:2] == [("user", None), ("soul", None)]
    assert ("system", "flush") in kinds and ("soul", "notebook") in kinds and ("soul", "self") in kinds
    assert ("hands", "hands-request") in kinds and ("hands", "hands-result") in kinds
    assert "Task: Write HANDS.md" in (home / "HANDS.md").read_text()
    soul_reply = rows[-2]
    assert soul_reply["prose"] == reply
    marks = soulctl("log", "sql", f"SELECT score FROM resonance_marks WHERE packet_id = '{soul_reply['id']}'",
                    "--json", "--home", home).json()
    assert marks["score"] == 0.9


def test_the_majordomo_keeps_the_notebook_under_pressure(home, llama_server):
    """Two real engines: the soul on llama.cpp in process, the majordomo behind an
    OpenAI-compatible server. The notebook rewrites are the majordomo's; no request exceeds
    either model's context."""
    from soulctl.home import Home
    from soulctl.log import Filters
    from soulctl.memory.rewrite import REWRITE_SLACK
    from soulctl.memory.session import open_session
    from soulctl.soul import Soul

    data = yaml.safe_load((home / "soul.yaml").read_text())
    data["roles"]["soul"].update(backend="llamacpp", context=1024)
    data["roles"]["majordomo"] = {"backend": "openai", "url": llama_server, "context": 2048}
    data["memory"].update(self_tokens=128, notebook_tokens=96, retrieved_tokens=0, window_tokens=256,
                          reply_tokens=32)
    (home / "soul.yaml").write_text(yaml.safe_dump(data))
    with Soul(Home(home)) as soul:
        chat = open_session(soul, "m")
        assert chat.keeper_role == "majordomo" and chat.keeper.name == "openai"
        flushes = sum(chat.turn(f"Turn {i}: name one animal that lives near {place}.").flushed
                      for i, place in enumerate(["a river", "the sea", "a glacier", "a desert", "a marsh",
                                                 "a forest", "a lake", "the tundra", "a reef", "a canyon"]))
        assert flushes >= 1
        packets = list(soul.store.list(Filters(session="m"), newest_first=False))
        versions = soul.store.memory_versions("notebook")
    assert versions and {v["author"] for v in versions} == {"majordomo"}
    rewrites = [p for p in packets if (p.meta or {}).get("kind") == "notebook"]
    assert len(rewrites) == flushes and {p.role for p in rewrites} == {"majordomo"}
    for p in rewrites:  # the majordomo's requests stay inside its context
        assert p.meta["backend"] == "openai" and p.meta["context"] == 2048
        assert p.meta["prompt_tokens"] + 96 + REWRITE_SLACK <= 2048
    replies = [p for p in packets if p.role == "soul" and not (p.meta or {}).get("kind")]
    assert len(replies) == 10 and all(p.meta["prompt_tokens"] + 32 <= 1024 for p in replies)
    assert all(p.meta["backend"] == "llamacpp" for p in replies)


def serve_from(home: Path, url: str, tools: bool) -> None:
    """The soul's role on a tool-calling server at `url` (2048 context, sectors to fit it);
    `tools`: whether the soul offers its own."""
    set_role(home, backend="openai", url=url, context=2048, tools=tools)
    data = yaml.safe_load((home / "soul.yaml").read_text())
    data["memory"].update(self_tokens=256, notebook_tokens=256, retrieved_tokens=256, window_tokens=768,
                          reply_tokens=64)
    (home / "soul.yaml").write_text(yaml.safe_dump(data))


def test_a_tool_calling_turn_on_a_real_server(home, tmp_path_factory):
    """The soul's model behind llama_cpp.server with a chat handler that emits tool calls: the
    soul calls search_memory, then invoke_agent (the stand-in agent), then answers; the log
    holds the calls, their results and the reply in order."""
    url, proc = start_llama_server(tmp_path_factory, "--chat_format", "chatml-function-calling")
    try:
        serve_from(home, url, tools=True)
        assert soulctl("log", "add", "Herons nest by the mill pond every spring.", "--session", "old",
                       "--home", home).code == 0
        standin = Path(__file__).resolve().parents[1] / "standin"
        result = soulctl("chat", "--tool", "search_memory", "--tool", "invoke_agent", "--session", "tc", "--json",
                         "--home", home, cwd=home, input="Find what we said about herons, then have your hands "
                         "write HANDS.md about them.\n",
                         env={"PATH": f"{standin}{os.pathsep}{BASE_ENV.get('PATH', '')}"})
        assert result.code == 0, result
    finally:
        stop(proc)
    rows = soulctl("log", "ls", "--session", "tc", "--reverse", "-n", "0", "--json", "--home", home).json_lines()
    kinds = [(r["role"], (r["meta"] or {}).get("kind"), (r["meta"] or {}).get("tool")) for r in rows]
    assert kinds[0] == ("user", None, None) and kinds[-1] == ("soul", None, None)
    assert kinds[1:3] == [("soul", "tool-call", "search_memory"), ("tool", "tool-result", "search_memory")]
    assert kinds[3:7] == [("soul", "tool-call", "invoke_agent"), ("hands", "hands-request", None),
                          ("hands", "hands-result", None), ("tool", "tool-result", "invoke_agent")]
    user, reply = rows[0], rows[-1]
    assert reply["parent"] == user["id"] and reply["id"] == result.json()["reply_id"]
    assert reply["meta"]["tools_called"][:2] == ["search_memory", "invoke_agent"]
    assert reply["meta"]["prompt_tokens"] + 64 <= 2048
    for call, answer in ((rows[1], rows[2]), (rows[3], rows[6])):
        assert call["parent"] == user["id"] and answer["parent"] == call["id"]
    assert rows[6]["meta"]["ok"] is True and "Done: wrote HANDS.md" in rows[6]["prose"]
    assert (home / "HANDS.md").is_file()


WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_a_clients_tools_round_trip_through_serve(home, tmp_path_factory, tmp_path):
    """`soulctl serve` on a tool-calling engine (the soul's model behind llama_cpp.server's
    chatml-function-calling): a client's function is offered, the soul's call comes back to
    the client (chat completions: tool_calls; responses: a function_call item, streamed too),
    the result sent in the next request continues the same turn, and the log holds the call,
    its result and the reply, linked. The soul's own tools never reach the client."""
    import openai
    from tests.func.served import Served, error_of, http

    url, proc = start_llama_server(tmp_path_factory, "--chat_format", "chatml-function-calling")
    server = None
    try:
        serve_from(home, url, tools=False)
        server = Served(home, log=tmp_path / "serve.log")
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
        # chat completions: the call comes back, then its result continues the turn (no session
        # named: the call's id finds it)
        question = {"role": "user", "content": "What is the weather in Lisbon?"}
        tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now in a city.",
                                                   "parameters": WEATHER}}]
        first = client.chat.completions.with_raw_response.create(
            model="soul", messages=[question], tools=tools, max_tokens=48,
            tool_choice={"type": "function", "function": {"name": "get_weather"}})
        asked = first.parse()
        session = first.headers["x-soul-session"]
        call = asked.choices[0].message.tool_calls[0]
        assert asked.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
        assert isinstance(json.loads(call.function.arguments), dict) and call.id.startswith("call_")
        assert asked.model_extra["soul"]["tools"] == {"count": 1, "offered": True, "names": ["get_weather"]}
        answered = client.chat.completions.with_raw_response.create(
            model="soul", tools=tools, tool_choice="none", max_tokens=32, messages=[
                question, asked.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C, a west wind."}])
        reply = answered.parse()
        assert answered.headers["x-soul-session"] == session and reply.choices[0].finish_reason in ("stop", "length")
        assert reply.choices[0].message.content.strip() and not reply.choices[0].message.tool_calls
        # the same result again answers nothing now: 400 naming it, nothing logged
        again = http(server.port, "POST", "/v1/chat/completions", json.dumps({
            "user": session, "messages": [question, {"role": "assistant", "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": call.id, "content": "x"}]}).encode())
        assert again[0] == 400 and "no tool call waits for a result" in error_of(again)["message"], again
        # responses, streamed: a function_call item, then function_call_output with previous_response_id
        stream = client.responses.create(model="soul", input="Weather in Oslo, please?", stream=True,
                                         max_output_tokens=48, tools=[
                                             {"type": "function", "name": "get_weather", "parameters": WEATHER}],
                                         tool_choice={"type": "function", "name": "get_weather"})
        events = list(stream)
        kinds = [e.type for e in events]
        assert "response.function_call_arguments.done" in kinds and "response.output_text.delta" not in kinds
        made = events[-1].response
        assert events[-1].type == "response.completed" and [o.type for o in made.output] == ["function_call"]
        assert [e.sequence_number for e in events] == list(range(len(events)))
        fc = made.output[0]
        followed = client.responses.create(model="soul", previous_response_id=made.id, max_output_tokens=32,
                                           tool_choice="none", input=[{"type": "function_call_output",
                                                                       "call_id": fc.call_id,
                                                                       "output": "Snow, -3 C."}])
        assert followed.output_text.strip() and followed.model_extra["soul"]["session"] == \
            made.model_extra["soul"]["session"]
        oslo = made.model_extra["soul"]["session"]
    finally:
        if server is not None:
            server.stop()
        stop(proc)
    # a model served elsewhere is not "followed": no reload (which forgot the waiting calls)
    assert "current moved" not in (tmp_path / "serve.log").read_text()
    for name, (tool, result) in ((session, ("get_weather", "Sunny, 21 C")), (oslo, ("get_weather", "Snow, -3 C"))):
        rows = soulctl("log", "ls", "--session", name, "--reverse", "-n", "0", "--json", "--home", home).json_lines()
        kinds = [(r["role"], (r["meta"] or {}).get("kind"), (r["meta"] or {}).get("client")) for r in rows]
        assert kinds == [("user", None, None), ("soul", "tool-call", True), ("tool", "tool-result", True),
                         ("soul", None, None)], kinds
        user, asked_row, result_row, reply_row = rows
        assert asked_row["parent"] == user["id"] and result_row["parent"] == asked_row["id"]
        assert result in result_row["prose"] and asked_row["meta"]["tool"] == tool
        assert reply_row["parent"] == user["id"] and reply_row["meta"]["tools_called"] == [tool]
