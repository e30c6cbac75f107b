"""soulctl serve and soulctl mcp: a real server on loopback, driven by real clients — the
`openai` package, the `mcp` client (stdio and streamable HTTP) and raw HTTP for the errors."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openai
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.conftest import BASE_ENV, REPO, copy_home, npm_client, refused, soulctl
from tests.func.served import Served, error_of, http

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def served_home(gen0_home, tmp_path_factory) -> Path:
    root = copy_home(gen0_home, tmp_path_factory.mktemp("serve") / "home")
    docs = root.parent / "docs"
    docs.mkdir()
    (docs / "herons.md").write_text("# Herons\n\nThe grey heron fishes at the mill pond at dawn.\n")
    assert soulctl("mount", "add", "docs", docs, "--home", root).code == 0
    return root


@pytest.fixture(scope="module")
def server(served_home, tmp_path_factory):
    served = Served(served_home, "--queue", "3", "--max-body", "64KiB",
                    log=tmp_path_factory.mktemp("serve-log") / "serve.log")
    yield served
    served.stop()


def packets(home: Path, session: str) -> list[dict]:
    result = soulctl("log", "ls", "--session", session, "--json", "--home", home)
    assert result.code == 0, result
    return sorted(result.json_lines(), key=lambda p: p["seq"])


def test_openai_client_turn_is_a_chat_turn(server, served_home):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    raw = client.chat.completions.with_raw_response.create(
        model="gen-0000", user="served-1", max_tokens=24,
        messages=[{"role": "system", "content": "ignored: the soul's sectors come from its memory"},
                  {"role": "user", "content": "Say hello to the heron."}])
    reply = raw.parse()
    assert raw.headers["x-soul-session"] == "served-1"
    text = reply.choices[0].message.content
    assert text and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens

    # `soulctl chat` runs beside the server, on the same log
    chat = soulctl("chat", "--session", "chatted-1", "--json", "Say hello to the heron.", "--home", served_home)
    assert chat.code == 0, chat
    served, chatted = packets(served_home, "served-1"), packets(served_home, "chatted-1")
    assert [p["role"] for p in served] == [p["role"] for p in chatted] == ["user", "soul"]
    assert served[1]["parent"] == served[0]["id"] and chatted[1]["parent"] == chatted[0]["id"]
    assert served[1]["prose"] == text
    assert served[1]["meta"]["prompt_tokens"] == reply.usage.prompt_tokens
    assert set(served[1]["meta"]) == set(chatted[1]["meta"])
    assert served[0]["generation"] == chatted[0]["generation"] == "gen-0000"

    # the session goes on: the window holds the first exchange
    again = client.chat.completions.create(model="soul", user="served-1", max_tokens=8,
                                           messages=[{"role": "user", "content": "And again?"}])
    assert again.usage.prompt_tokens > reply.usage.prompt_tokens
    # sampling from the request over soul.yaml's: OpenAI's fields, and llama.cpp's extensions
    sampled = client.chat.completions.create(
        model="soul", user="served-2", max_tokens=8, temperature=1.1, top_p=0.8, seed=3,
        frequency_penalty=0.2, presence_penalty=0.1, extra_body={"top_k": 20, "min_p": 0.1, "repeat_penalty": 1.2},
        messages=[{"role": "user", "content": "Name a bird."}])
    assert sampled.choices[0].message.content
    assert len(packets(served_home, "served-1")) == 4


def test_streaming_with_usage_matches_the_log(server, served_home):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    stream = client.chat.completions.create(
        model="gen-0000", max_tokens=24, stream=True, stream_options={"include_usage": True},
        extra_headers={"X-Soul-Session": "streamed-1"},
        messages=[{"role": "user", "content": "Name two birds of the mill pond."}])
    pieces, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    logged = packets(served_home, "streamed-1")
    assert [p["role"] for p in logged] == ["user", "soul"]
    assert logged[1]["prose"] == "".join(pieces).strip()
    assert usage is not None and usage.prompt_tokens == logged[1]["meta"]["prompt_tokens"]
    assert finish in ("stop", "length")

    # on the wire: data: lines, ending with [DONE]; stop strings end the reply before them
    status, headers, body = http(server.port, "POST", "/v1/chat/completions", json.dumps(
        {"messages": [{"role": "user", "content": "Count from one to ten in words, separated by commas."}],
         "stream": True, "max_tokens": 40, "stop": [","], "user": "streamed-2"}).encode(),
        {"Content-Type": "application/json"})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in body.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in map(json.loads, events[:-1])
                   if c["choices"])
    assert "," not in text
    assert packets(served_home, "streamed-2")[1]["prose"] == text.strip()


def test_embeddings_are_the_logs_vectors(server, served_home):
    text = "The heron waits by the sluice gate."
    added = soulctl("log", "add", "--json", text, "--home", served_home)
    assert added.code == 0, added
    packet_id = added.json_lines()[0]["id"]
    shown = soulctl("log", "show", packet_id, "--json", "--home", served_home)
    stored = np.array(shown.json()["embedding"], dtype=np.float32)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    models = [m.id for m in client.models.list().data]
    assert models[0] == "gen-0000" and len(models) == 2
    got = client.embeddings.create(model=models[1], input=[text, "another line"])  # base64 on the wire
    vector = np.array(got.data[0].embedding, dtype=np.float32)
    assert float(vector @ stored / np.linalg.norm(vector) / np.linalg.norm(stored)) >= 0.9999
    assert len(got.data) == 2 and got.usage.prompt_tokens > 0
    floats = json.loads(http(server.port, "POST", "/v1/embeddings", json.dumps(
        {"input": text, "encoding_format": "float"}).encode())[2])
    assert np.allclose(floats["data"][0]["embedding"], vector, atol=1e-6)


def test_errors_in_openai_shape(server):
    port = server.port
    post = lambda body, **h: http(port, "POST", "/v1/chat/completions", body, h)  # noqa: E731
    bad = post(b'{"messages": [')
    assert bad[0] == 400 and "not valid JSON" in error_of(bad)["message"]
    for body, param in ((b'{"messages": []}', "messages"),
                        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', "temperature"),
                        (b'{"messages": [{"role": "user", "content": "hi"}], "top_p": 5}', "top_p"),
                        (b'{"messages": [{"role": "user", "content": "hi"}], "seed": -1}', "seed"),
                        (b'{"messages": [{"role": "user", "content": "hi"}], "presence_penalty": 3}', "presence_penalty"),
                        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', "max_tokens"),
                        (b'{"messages": [{"role": "user", "content": "hi"}], "n": 2}', "n"),
                        (b'{"messages": [{"role": "user", "content": "hi"}], "stop": [1]}', "stop"),
                        (b'{"messages": [{"role": "assistant", "content": "hi"}]}', "messages"),
                        (b'{"messages": [{"role": "user", "content": "hi"}], "user": ""}', None)):
        status, _, raw = post(body)
        if param is None:
            continue  # an empty user is "no user": a new session, answered below
        error = json.loads(raw)["error"]
        assert status == 400 and error["param"] == param and error["type"] == "invalid_request_error", raw
    missing = post(b'{"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}')
    assert missing[0] == 404 and "gpt-4" in error_of(missing)["message"]
    nowhere = http(port, "GET", "/v1/nothing")
    assert nowhere[0] == 404 and error_of(nowhere)["type"] == "not_found_error"
    embed = http(port, "POST", "/v1/embeddings", b'{"input": [[1, 2, 3]]}')
    assert embed[0] == 400 and error_of(embed)["param"] == "input"
    # text that is not text (a lone UTF-16 surrogate), and JSON nested 30,000 deep: 400, not 500
    lone = post(b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}')
    assert lone[0] == 400 and error_of(lone)["param"] == "messages[0].content", lone
    lone = http(port, "POST", "/v1/embeddings", b'{"input": ["fine", "a\\udfffb"]}')
    assert lone[0] == 400 and error_of(lone)["param"] == "input[1]", lone
    deep = post(b"[" * 30_000 + b"]" * 30_000)  # under this server's --max-body 64KiB
    assert deep[0] == 400 and "nested more than" in error_of(deep)["message"], deep

    # too large: refused from the Content-Length alone, before the body is sent
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 900000000\r\n\r\n")
    answer = b""
    while chunk := sock.recv(65536):  # the server answers and closes without waiting for the body
        answer += chunk
    answer = answer.decode()
    sock.close()
    assert answer.startswith("HTTP/1.1 413") and "over the limit" in answer
    # … and a chunked body without a length, once it passes the limit
    chunk = b"x" * 70000
    status, _, raw = http(port, "POST", "/v1/chat/completions",
                          f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n",
                          {"Transfer-Encoding": "chunked"})
    assert status == 413, raw

    # no CORS unless asked: no header for a cross-origin request, a preflight is not allowed
    status, headers, _ = http(port, "GET", "/v1/models", headers={"Origin": "http://evil.example"})
    assert status == 200 and not any(k.startswith("access-control") for k in headers)
    status, headers, _ = http(port, "OPTIONS", "/v1/chat/completions", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert status == 405 and not any(k.startswith("access-control") for k in headers)


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "frobnicate": True}),
    ("/v1/responses", {"input": "hi", "frobnicate": True}),
    ("/v1/embeddings", {"input": "hi", "frobnicate": True}),
])
def test_an_unknown_field_is_refused_by_name_on_every_surface(server, path, body):
    status, _, raw = http(server.port, "POST", path, json.dumps(body).encode())
    error = json.loads(raw)
    assert status == 400 and set(error) == {"error"}, raw
    assert {k: error["error"][k] for k in ("type", "param", "code")} == {
        "type": "invalid_request_error", "param": "frobnicate", "code": "unknown_field"}
    assert "'frobnicate' is not supported" in error["error"]["message"]


def test_mcp_over_http_and_stdio(server, served_home):
    async def exercise(target, label: str) -> dict:
        async with Client(target) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            # the colleague's face on both transports: ask the soul, read its resources, its prompt,
            # and hand it a packet with the vector it came with
            asked = (await client.call_tool("ask_soul", {"message": "Name a river.", "session": f"ask-{label}",
                                                         "with_embedding": True})).structured_content["result"]
            resources = [str(r.uri) for r in (await client.list_resources()).resources]
            lineage = json.loads((await client.read_resource("soul://lineage")).contents[0].text)
            prompts = [p.name for p in (await client.list_prompts()).prompts]
            handed = (await client.call_tool("add_to_log", {
                "prose": asked["prose"], "embedding": asked["embedding"], "embed_model": asked["embed_model"],
                "session": f"peer-{label}"})).structured_content["result"]
            added = await client.call_tool("add_to_log", {"text": "A heron stood in the reeds at the weir.",
                                                          "session": "mcp-notes", "meta": {"via": "mcp"}})
            assert not added.is_error, added
            found = await client.call_tool("search_memory", {"query": "heron in the reeds", "k": 3,
                                                             "with_embedding": True})
            mounted = await client.call_tool("mount_corpus", {"name": "docs"})
            corpus = await client.call_tool("search_corpus", {"query": "grey heron at dawn"})
            notebook = await client.call_tool("read_notebook", {"which": "self"})
            wrong = await client.call_tool("mount_corpus", {"name": "no-such-corpus"})
            off = await client.call_tool("unmount_corpus", {})
            refusals = []  # arguments that do not fit the schema: JSON-RPC -32602 naming the argument
            for name, args in (("search_memory", {"query": 123, "k": "many"}),
                               ("search_memory", {"query": "heron", "k": "many"}),
                               ("add_to_log", {"text": "x", "colour": "red"}),
                               ("read_notebook", {"which": "diary"}),
                               ("invoke_agent", {"task": "Write HANDS.md"})):
                try:
                    await client.call_tool(name, args)
                    refusals.append(None)
                except MCPError as exc:
                    refusals.append((exc.code, exc.message))
            return dict(names=names, found=found, mounted=mounted, corpus=corpus, notebook=notebook,
                        wrong=wrong, off=off, refusals=refusals, asked=asked, resources=resources,
                        lineage=lineage, prompts=prompts, handed=handed)

    stdio = StdioServerParameters(command=sys.executable, args=["-m", "soulctl", "mcp", "--home", str(served_home)],
                                  env=BASE_ENV, cwd=str(REPO))
    for target, label in ((server.url + "/mcp", "http"), (stdio, "stdio")):
        got = asyncio.run(exercise(target, label))
        asked = got["asked"]
        logged = soulctl("log", "ls", "--session", f"ask-{label}", "--json", "--home", served_home).json_lines()
        assert [q["id"] for q in logged][:1] == [asked["id"]] and asked["prose"] and len(asked["embedding"]) == 384
        assert {"soul://notebook", "soul://self", "soul://lineage"} <= set(got["resources"])
        assert got["lineage"]["generation"] == "gen-0000" and got["prompts"] == ["consult-the-soul"]
        assert got["handed"]["embedding"] == "as given"
        hits = soulctl("log", "search", asked["prose"], "--session", f"peer-{label}", "--json",
                       "--home", served_home).json_lines()
        assert [h["id"] for h in hits] == [got["handed"]["id"]]
        assert {"search_memory", "add_to_log", "read_notebook", "rewrite_notebook", "mount_corpus",
                "unmount_corpus", "list_corpora", "search_corpus", "mark_resonance", "budget"} <= set(got["names"])
        refusals = got["refusals"]
        assert [r and r[0] for r in refusals[:4]] == [-32602] * 4, refusals
        assert "`query` must be a string" in refusals[0][1] and "`k` must be an integer" in refusals[1][1]
        assert "takes no `colour`" in refusals[2][1] and "`which` must be one of notebook, self" in refusals[3][1]
        # the coding agent runs with the user's rights: over HTTP only behind a token (stdio: the
        # client launched the server itself)
        if target is stdio:
            assert "invoke_agent" in got["names"] and refusals[4] is None  # a tool error: no agent here
        else:
            assert "invoke_agent" not in got["names"]
            assert refusals[4][0] == -32602 and "not offered here" in refusals[4][1]
        hits = got["found"].structured_content["result"]
        found = [h for h in hits if "heron stood in the reeds" in h["prose"]]
        assert not got["found"].is_error and found, hits
        assert len(found[0]["embedding"]) == 384  # the bifocal packet: prose and vector
        assert got["mounted"].structured_content["result"]["mounted"] == ["docs"]
        assert "herons.md" in got["corpus"].structured_content["result"][0]["cite"]
        assert "soul of this machine" in got["notebook"].structured_content["result"]["text"]
        assert got["wrong"].is_error and "no-such-corpus" in got["wrong"].content[0].text
        assert got["off"].structured_content["result"]["mounted"] == []


def test_token_gate_and_bind_refusal(gen0_home, tmp_path):
    served_home = copy_home(gen0_home, tmp_path / "home")  # its own: one server per home
    refused(soulctl("serve", "--host", "0.0.0.0", "--home", served_home), 2, "without a token")
    (tmp_path / "short").write_text("abc\n")
    (tmp_path / "short").chmod(0o600)
    refused(soulctl("serve", "--token-file", tmp_path / "short", "--home", served_home), 5, "at least 16")
    refused(soulctl("serve", "--token-file", tmp_path / "absent", "--home", served_home), 3, "no token file")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    served = Served(served_home, "--token-file", str(token_file), log=tmp_path / "serve.log")
    try:
        assert http(served.port, "GET", "/health")[0] == 200
        for method, path, body in (("GET", "/v1/models", None), ("POST", "/v1/chat/completions", b"{}"),
                                   ("POST", "/v1/embeddings", b"{}"), ("POST", "/mcp", b"{}"),
                                   ("GET", "/v1/nothing", None)):
            for auth in (None, "Bearer wrong-token", f"Bearer {TOKEN}x", TOKEN):
                status, headers, raw = http(served.port, method, path, body, {"Authorization": auth} if auth else {})
                assert status == 401 and headers.get("www-authenticate") == "Bearer", (path, auth, raw)
                assert error_of((status, headers, raw))["type"] == "authentication_error"
        client = openai.OpenAI(base_url=served.url + "/v1", api_key=TOKEN)
        assert client.models.list().data[0].id == "gen-0000"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=served.url + "/v1", api_key="wrong").models.list()
    finally:
        assert served.stop() == 0


def test_eight_clients_and_a_client_killed_mid_stream(server, served_home):
    def one(i: int):
        body = {"messages": [{"role": "user", "content": f"Client {i}: name a colour."}], "max_tokens": 8,
                "user": f"crowd-{i}", "stream": i % 2 == 0}
        return http(server.port, "POST", "/v1/chat/completions", json.dumps(body).encode(), read_timeout=300)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))
    statuses = [a[0] for a in answers]
    assert set(statuses) <= {200, 429, 503} and statuses.count(200) >= 3, statuses
    for i, (status, headers, body) in enumerate(answers):
        logged = packets(served_home, f"crowd-{i}")
        if status == 200:
            assert [p["role"] for p in logged] == ["user", "soul"], (i, logged)  # exactly once
        else:
            assert int(headers["retry-after"]) >= 1 and logged == []
    # a client that leaves mid-stream: the engine is freed and its partial reply logged as such
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=120)
    body = json.dumps({"messages": [{"role": "user", "content": "Tell me a long story about the mill."}],
                       "max_tokens": 200, "stream": True, "user": "leaver"}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    seen = b""
    while seen.count(b"data: ") < 3:
        seen += sock.recv(4096)
    sock.close()
    after = openai.OpenAI(base_url=server.url + "/v1", api_key="x").chat.completions.create(
        model="soul", max_tokens=4, user="after-leaver", messages=[{"role": "user", "content": "Still there?"}])
    assert after.choices[0].message.content is not None
    leaver = packets(served_home, "leaver")
    assert [p["role"] for p in leaver] == ["user", "soul"]
    assert leaver[1]["meta"]["partial"] is True and leaver[1]["meta"]["cut"] == "the client disconnected"
    # the log is consistent afterwards: every served turn is a user packet and its linked reply
    rows = soulctl("log", "sql", "SELECT count(*) AS n FROM packets p JOIN packets r ON r.parent = p.id "
                   "WHERE p.session LIKE 'crowd-%' OR p.session LIKE 'leaver'", "--json", "--home", served_home)
    assert rows.code == 0 and rows.json_lines()[0]["n"] == statuses.count(200) + 1, rows


def test_responses_api_is_a_chat_turn(server, served_home):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    first = client.responses.create(model="soul", input="Say hello to the heron.", user="resp-1",
                                    max_output_tokens=24, instructions="Answer in one short sentence.")
    assert first.output_text and first.status in ("completed", "incomplete") and first.usage.output_tokens > 0
    soul = first.model_extra["soul"]
    assert soul["session"] == "resp-1" and soul["instructions"]["placed"] == "after the notebook"
    rows = packets(served_home, "resp-1")
    assert [r["role"] for r in rows] == ["user", "soul"] and rows[1]["prose"] == first.output_text
    # previous_response_id continues the same soul session; a stored response reads back
    second = client.responses.create(model="soul", input=[{"role": "user", "content": "And again?"}],
                                     previous_response_id=first.id, max_output_tokens=8, user="resp-1")
    assert second.model_extra["soul"]["session"] == "resp-1" and second.previous_response_id == first.id
    assert len(packets(served_home, "resp-1")) == 4
    assert client.responses.retrieve(first.id, extra_query={"user": "resp-1"}).output_text == first.output_text
    # streamed: the documented events, the text the log keeps
    events = list(client.responses.create(model="soul", input="Name a bird.", user="resp-2", stream=True,
                                          max_output_tokens=12))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-1] in ("response.completed", "response.incomplete") and "response.output_text.done" in kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.strip() and events[-1].response.output_text.strip() == text.strip()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert packets(served_home, "resp-2")[1]["prose"] == text.strip()
    # what it does not honour is refused by name; nothing is logged for it
    post = lambda body: http(server.port, "POST", "/v1/responses", json.dumps(body).encode())  # noqa: E731
    for body, param in (({"input": "hi", "tool_choice": "required", "tools": [{"type": "function", "name": "f"}]},
                         "tool_choice"),
                        ({"input": "hi", "reasoning": {"effort": "high"}}, "reasoning.effort"),
                        ({"input": "hi", "background": True}, "background"),
                        ({"input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
                        ({"input": "hi", "text": {"format": {"type": "json_schema"}}}, "text.format"),
                        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input"),
                        ({"input": [{"type": "image_generation_call"}, "hi"]}, "input[0].type"),
                        ({"input": ""}, "input")):
        status, _, raw = post(body)
        assert status == 400 and json.loads(raw)["error"]["param"] == param, raw
    # a client's tools: accepted, not offered to an engine that cannot call them, and said so
    status, _, raw = post({"input": "Hi there.", "max_output_tokens": 4, "tools": [
        {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]})
    tools = json.loads(raw)["soul"]["tools"]
    assert status == 200 and tools["offered"] is False and "llamacpp backend does not call tools" in tools["why"]
    missing = post({"input": "hi", "previous_response_id": "resp_" + "0" * 32})
    assert missing[0] == 404 and "no stored response" in error_of(missing)["message"]
    unstored = client.responses.create(model="soul", input="Quietly.", store=False, max_output_tokens=4)
    assert http(server.port, "GET", f"/v1/responses/{unstored.id}")[0] == 404
    # JSON output, honoured by llama.cpp's grammar in both dialects
    schema = {"type": "object", "properties": {"bird": {"type": "string", "maxLength": 12}}, "required": ["bird"]}
    shaped = client.responses.create(model="soul", input="Name a bird.", max_output_tokens=48, text={
        "format": {"type": "json_schema", "name": "bird", "schema": schema}})
    assert set(json.loads(shaped.output_text)) == {"bird"} and shaped.text.format.type == "json_schema"
    chat_json = client.chat.completions.create(
        model="soul", max_tokens=48, messages=[{"role": "user", "content": "Name a bird, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "bird", "schema": schema}})
    assert isinstance(json.loads(chat_json.choices[0].message.content)["bird"], str)
    # chat completions: a system message is the client's instructions, placed and shown
    reply = client.chat.completions.create(model="soul", user="resp-3", max_tokens=8, messages=[
        {"role": "system", "content": "Answer as a pirate."}, {"role": "user", "content": "Hello?"}])
    assert reply.model_extra["soul"]["instructions"]["tokens"] > 0


def test_codex_cli_talks_to_the_soul_over_the_responses_api(server, served_home, tmp_path):
    """The real Codex CLI (npm @openai/codex), a custom provider with the Responses wire API:
    it sends its own tools, instructions and reasoning settings; the soul answers in text, says
    the tools were not offered, and the turn is in the log. One access line per request."""
    codex = npm_client("codex")
    config = tmp_path / "codex"
    config.mkdir()
    (config / "config.toml").write_text(
        'model = "soul"\nmodel_provider = "soul"\n[model_providers.soul]\nname = "soul"\n'
        f'base_url = "{server.url}/v1"\nwire_api = "responses"\n')
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run([str(codex), "exec", "--skip-git-repo-check", "Say hello to the heron, Codex here."],
                          cwd=work, env={**BASE_ENV, "CODEX_HOME": str(config)}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    users = soulctl("log", "ls", "--role", "user", "--json", "--home", served_home).json_lines()
    asked = next(p for p in users if p["prose"] == "Say hello to the heron, Codex here.")
    reply = next(p for p in soulctl("log", "ls", "--session", asked["session"], "--json", "--home",
                                    served_home).json_lines() if p["parent"] == asked["id"])
    assert reply["prose"].strip() and reply["prose"].strip()[:40] in done.stdout
    log = server.log.read_text()
    assert re.search(rf"serve: POST /v1/responses 200 \d+ ms session={asked['session']} generation=gen-0000", log), log[-2000:]


def test_mcp_as_a_colleague(served_home):
    """ask_soul, resources, a prompt and a peer's bifocal packet, with the Python mcp client over
    stdio; then the same server through the official inspector's CLI."""
    stdio = StdioServerParameters(command=sys.executable, args=["-m", "soulctl", "mcp", "--home", str(served_home)],
                                  env=BASE_ENV, cwd=str(REPO))

    async def exercise() -> dict:
        got = {}
        async with Client(stdio) as client:
            got["resources"] = [str(r.uri) for r in (await client.list_resources()).resources]
            got["templates"] = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
            got["self"] = (await client.read_resource("soul://self")).contents[0].text
            got["lineage"] = json.loads((await client.read_resource("soul://lineage")).contents[0].text)
            got["prompts"] = [p.name for p in (await client.list_prompts()).prompts]
            got["prompt"] = (await client.get_prompt("consult-the-soul", {"task": "rename the repo"})).messages[0]
            asked = await client.call_tool("ask_soul", {"message": "Say hello to the heron.", "session": "mcp-ask",
                                                        "with_embedding": True})
            got["asked"] = asked.structured_content["result"]
            got["packet"] = json.loads((await client.read_resource(f"soul://packet/{got['asked']['id']}")).contents[0].text)
            vector, model = got["asked"]["embedding"], got["asked"]["embed_model"]
            prose = got["asked"]["prose"]
            peer = "The peer saw a heron at the weir at dawn."
            got["same"] = (await client.call_tool("add_to_log", {"prose": prose, "embedding": vector,
                                                                 "embed_model": model, "session": "peer"})).structured_content
            got["wrong"] = await client.call_tool("add_to_log", {"prose": peer, "embedding": vector, "embed_model": model})
            got["other"] = (await client.call_tool("add_to_log", {"prose": peer, "embedding": [0.5, 0.5],
                                                                  "embed_model": "peer-model-2d", "session": "peer"})
                            ).structured_content
            try:
                await client.call_tool("add_to_log", {"role": "user"})
            except MCPError as exc:
                got["neither"] = (exc.code, exc.message)
        return got

    got = asyncio.run(exercise())
    assert {"soul://notebook", "soul://self", "soul://lineage"} <= set(got["resources"])
    assert got["templates"] == ["soul://packet/{id}"] and "soul of this machine" in got["self"]
    assert got["lineage"]["generation"] == "gen-0000" and got["prompts"] == ["consult-the-soul"]
    assert "rename the repo" in got["prompt"].content.text and "ask_soul" in got["prompt"].content.text
    asked = got["asked"]
    assert asked["prose"] and asked["session"] == "mcp-ask" and len(asked["embedding"]) == 384
    assert got["packet"]["id"] == asked["id"] and got["packet"]["prose"] == asked["prose"]
    logged = soulctl("log", "ls", "--session", "mcp-ask", "--json", "--home", served_home).json_lines()
    assert [p["role"] for p in logged] == ["soul", "user"] and logged[0]["id"] == asked["id"]
    assert got["same"]["result"]["embedding"] == "as given"
    assert got["wrong"].is_error and "not all-MiniLM-L6-v2" in got["wrong"].content[0].text
    assert got["other"]["result"]["embedding"] == "re-embedded"
    assert got["neither"][0] == -32602 and "prose" in got["neither"][1]
    shown = soulctl("log", "show", got["other"]["result"]["id"], "--json", "--home", served_home).json()
    assert shown["meta"]["peer_embedding"] == {"embed_model": "peer-model-2d", "embedding": [0.5, 0.5]}
    hits = soulctl("log", "search", "heron at the weir at dawn", "-k", "3", "--json", "--home", served_home).json_lines()
    assert got["other"]["result"]["id"] in [h["id"] for h in hits]
    # the official inspector, in CLI mode, against the same stdio server
    inspector = npm_client("mcp-inspector")
    base = [str(inspector), "--cli", sys.executable, "-m", "soulctl", "mcp", "--home", str(served_home)]

    def inspect(*args: str) -> dict:
        done = subprocess.run([*base, *args], env=BASE_ENV, cwd=REPO, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    assert "soul://notebook" in [r["uri"] for r in inspect("--method", "resources/list")["resources"]]
    assert inspect("--method", "prompts/list")["prompts"][0]["name"] == "consult-the-soul"
    read = inspect("--method", "resources/read", "--uri", "soul://self")
    assert "soul of this machine" in read["contents"][0]["text"]
    called = inspect("--method", "tools/call", "--tool-name", "ask_soul", "--tool-arg", "message=Name a bird.",
                     "--tool-arg", "session=inspected")
    assert json.loads(called["content"][0]["text"])["session"] == "inspected"


@pytest.mark.parametrize("own, other", [({"user": "alice"}, {"user": "bob"}),
                                        ({"header": "s-alice"}, {"header": "s-mallory"})])
def test_a_stored_response_belongs_to_the_user_that_made_it(server, served_home, own, other):
    """Read and continued under the `user` (or X-Soul-Session) that made it; to anyone else —
    another user, a caller naming no one — it does not exist (404, as for an id never made)."""
    def ask(who: dict, **body):
        headers = {"X-Soul-Session": who["header"]} if "header" in who else {}
        return http(server.port, "POST", "/v1/responses", json.dumps(
            {"max_output_tokens": 4, **({"user": who["user"]} if "user" in who else {}), **body}).encode(), headers)

    status, _, raw = ask(own, input="Remember the heron.")
    first = json.loads(raw)
    assert status == 200 and first["user"] == (own.get("user") or own.get("header"))
    for who in (other, {}):
        refused_ = ask(who, input="And what did I say?", previous_response_id=first["id"])
        assert refused_[0] == 404 and "no stored response" in error_of(refused_)["message"]
        headers = {"X-Soul-Session": who["header"]} if "header" in who else {}
        query = f"?user={who['user']}" if "user" in who else ""
        assert http(server.port, "GET", f"/v1/responses/{first['id']}{query}", headers=headers)[0] == 404
    status, _, raw = ask(own, input="And what did I say?", previous_response_id=first["id"])
    assert status == 200 and json.loads(raw)["soul"]["session"] == first["soul"]["session"]
    headers = {"X-Soul-Session": own["header"]} if "header" in own else {}
    query = f"?user={own['user']}" if "user" in own else ""
    assert http(server.port, "GET", f"/v1/responses/{first['id']}{query}", headers=headers)[0] == 200


@pytest.mark.parametrize("schema, words", [
    ({"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}}},
     "refers to itself"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "names nothing"),
    ({"type": "object", "properties": {"a": {"$ref": "https://example.org/s.json"}}}, "only local references"),
    ({"type": "object", "properties": {"a": {"type": "decimal"}}}, "unknown type"),
    ({"type": "string", "enum": [f"v{i}" for i in range(2000)]}, "enum values"),
    ({"type": "string", "enum": [f"a long value, number {i:06d}, of a long list" for i in range(900)]}, "over the limit"),
])
def test_a_schema_no_grammar_can_hold_is_the_clients_error(server, schema, words):
    """Refused in both dialects with 400 naming the field, before the model is asked."""
    chat = http(server.port, "POST", "/v1/chat/completions", json.dumps(
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
         "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}).encode())
    assert chat[0] == 400 and error_of(chat)["param"] == "response_format" and words in error_of(chat)["message"]
    responses = http(server.port, "POST", "/v1/responses", json.dumps(
        {"input": "hi", "max_output_tokens": 4, "text": {"format": {"type": "json_schema", "name": "x",
                                                                   "schema": schema}}}).encode())
    assert responses[0] == 400 and error_of(responses)["param"] == "text.format"


def test_a_client_that_leaves_mid_body_is_no_server_error(server):
    for body in (b'{"messages": [', b""):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 4096\r\n\r\n" + body)
        sock.close()
    time.sleep(1)
    log = server.log.read_text()
    assert log.count("POST /v1/chat/completions 499") == 2 and "ClientDisconnect" not in log, log[-2000:]
    assert http(server.port, "GET", "/health")[0] == 200


def test_sigterm_finishes_the_turn_in_flight(server, served_home):
    """Last in this module: it stops the server."""
    results = {}

    def request():
        results["answer"] = http(server.port, "POST", "/v1/chat/completions", json.dumps(
            {"messages": [{"role": "user", "content": "One more thing before you go."}], "max_tokens": 24,
             "user": "at-stop"}).encode(), read_timeout=300)

    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(1.0)  # the request is in
    assert server.stop(signal.SIGTERM) == 0
    thread.join(60)
    assert results["answer"][0] == 200
    logged = packets(served_home, "at-stop")
    assert [p["role"] for p in logged] == ["user", "soul"]
    assert "stopped (SIGTERM)" in server.log.read_text()
    assert "nanobind" not in server.log.read_text() and "Traceback" not in server.log.read_text()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5)
