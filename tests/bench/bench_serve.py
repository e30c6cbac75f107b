"""soulctl serve beside `python -m llama_cpp.server` serving the same GGUF, in the same run.

Both on loopback, both driven by the `openai` client with the same prompt (the soul's own
system text is sent to llama_cpp.server too, so both prompts are about the same size):
  - one client, streaming: time to first token and tokens/s (content chunks after the first
    over the time they took), median over the requests;
  - four clients at once: completed tokens per second of wall time;
  - /v1/embeddings requests/s (one short text each) beside a bare encode loop in process.
soulctl's first-token time includes the Memory OS turn (sectors, retrieval, the query's
embedding). Retrieval is turned off in the bench's home, so both read the same prompt; the
target is tokens/s ≥ 0.95× llama_cpp.server's and a first-token overhead no
larger than bench_chat's per-turn figure + 10 ms. The servers run one after the other, so
they never share the CPU.

Run: .venv/bin/python tests/bench/bench_serve.py [--requests 8] [--tokens 64]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
PROMPTS = ["Tell me about herons in two sentences.", "Describe a mill pond at dawn.",
           "What makes a good lighthouse?", "Name three rivers and one fact about each."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc, log: Path) -> None:
    import urllib.request

    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/models", timeout=2).read()
            return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    proc.kill()
    sys.exit(f"server did not start: {log.read_text()[-2000:]}")


def stream_once(client, model: str, prompt: str, tokens: int, system: str | None, user: str):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    start = time.perf_counter()
    first, count = None, 0
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=tokens, stream=True,
                                                temperature=0, user=user):
        if chunk.choices and chunk.choices[0].delta.content:
            count += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    return (first or end) - start, (count - 1) / (end - first) if first and count > 1 else 0.0, count


def measure(url: str, model: str, args, system: str | None, label: str) -> dict:
    import openai

    client = openai.OpenAI(base_url=url, api_key="unused", timeout=600)
    stream_once(client, model, "Hello.", 8, system, f"{label}-warm")  # warm
    ttft, rate = [], []
    for i in range(args.requests):
        first, tps, _ = stream_once(client, model, PROMPTS[i % len(PROMPTS)], args.tokens, system, f"{label}-{i}")
        ttft.append(first)
        rate.append(tps)
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda i: stream_once(client, model, PROMPTS[i], args.tokens, system,
                                                     f"{label}-c{i}")[2], range(4)))
    wall = time.perf_counter() - start
    return {"ttft": statistics.median(ttft), "tps": statistics.median(rate), "throughput": sum(counts) / wall}


def embeddings_rate(url: str, seconds: float = 5.0) -> float:
    import openai

    client = openai.OpenAI(base_url=url, api_key="unused")
    client.embeddings.create(model="embedder", input="warm")
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        client.embeddings.create(model="embedder", input=f"the heron counted {n} fish")
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()

    from soulctl.embed import embedder_for
    from soulctl.engine import open_engine
    from soulctl.home import Home
    from soulctl.memory import notebook as nb

    tmp = Path(tempfile.mkdtemp(prefix="soulctl-bench-serve-"))
    root = tmp / "home"
    subprocess.run([sys.executable, "-m", "soulctl", "init", str(root)], check=True, env=ENV,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # retrieval off for this comparison, so both servers read the same prompt (self-definition,
    # empty notebook, the message); bench_chat measures what retrieval costs a turn
    config = root / "soul.yaml"
    config.write_text(re.sub(r"retrieved_tokens: \d+", "retrieved_tokens: 0", config.read_text()))
    home = Home(root)
    engine = open_engine(home)
    gguf, context = engine.path, engine.context_length
    engine.close()
    system = nb.default_self(home) + "\n\n# Notebook\n(empty)"  # the soul's system text on an empty log

    port = free_port()
    log = tmp / "llama.log"
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", str(context),
                             "--n_threads", str(os.cpu_count())],  # the threads soulctl's engine uses
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=ENV)
    url = f"http://127.0.0.1:{port}/v1"
    wait_up(url, proc, log)
    peer = measure(url, "peer", args, system, "peer")
    proc.terminate()
    proc.wait(60)

    log = tmp / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "soulctl", "serve", "--home", str(root), "--port", "0",
                             "--queue", "8"], stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=ENV, cwd=REPO)
    deadline = time.time() + 300
    while not (found := re.search(r"at (http://127\.0\.0\.1:\d+/v1)", log.read_text())):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit(f"serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    url = found.group(1)
    ours = measure(url, "soul", args, None, "soul")
    served_rate = embeddings_rate(url)
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)

    embedder = embedder_for(home.config, home.root)
    embedder.encode(["warm"])
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 5.0:
        embedder.encode([f"the heron counted {n} fish"])
        n += 1
    bare_rate = n / (time.perf_counter() - start)

    print(f"model {gguf.name}, context {context}, {args.requests} requests of {args.tokens} tokens, streamed")
    print(f"{'':28s} {'soulctl serve':>14s} {'llama_cpp.server':>17s} {'ratio':>7s}")
    print(f"{'first token (median)':28s} {ours['ttft'] * 1000:11.1f} ms {peer['ttft'] * 1000:14.1f} ms "
          f"{'':>2s}+{(ours['ttft'] - peer['ttft']) * 1000:.1f} ms")
    print(f"{'tokens/s, one client':28s} {ours['tps']:14.1f} {peer['tps']:17.1f} {ours['tps'] / peer['tps']:6.2f}x")
    print(f"{'tokens/s, four clients':28s} {ours['throughput']:14.1f} {peer['throughput']:17.1f} "
          f"{ours['throughput'] / peer['throughput']:6.2f}x")
    print(f"{'embeddings requests/s':28s} {served_rate:14.1f} {bare_rate:14.1f} (bare encode) "
          f"{served_rate / bare_rate:5.2f}x")


if __name__ == "__main__":
    main()
