"""Memory OS overhead per chat turn, beside the generation time of the same turns.

A soul home whose log holds N packets (default 100,000; synthetic, loaded as in bench_log) and
a mounted corpus (this repository's docs). A scripted conversation runs through ChatSession on
the embedded model (the backend `auto` picks). Each turn is split into:
  - assembly: sectors, retrieval from the corpus and the log (query embedded once), token count;
  - logging: the user and soul packets embedded and written;
  - generation: the engine's own time to produce the reply.
Overhead = assembly + logging (everything but generation). Target: <= 50 ms at 100k packets.

A turn's packets are committed on the critical path; their index update (a tantivy commit) and
the database checkpoint then run in the background, under the store's lock, and are reported
separately; --think-ms 0 runs turns back to back, so they are waited on.

Run: .venv/bin/python tests/bench/bench_chat.py [--packets 100000] [--turns 20] [--think-ms 1000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_log import make_home, realistic_vectors, sentences  # noqa: E402  (same directory)

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = [
    "What does the budget command compare against RAM?",
    "Tell me one short fact about herons.",
    "How does the pressure protocol keep the window inside its sector?",
    "What is a golden anchor for?",
    "Which backends can serve the soul?",
    "Describe a river in one sentence.",
    "What happens to turns after the window is flushed?",
    "How are generations kept immutable?",
    "Name a good name for a lighthouse cat.",
    "What does dream train on?",
]


class Timed:
    """Wraps a callable and keeps how long each call took (instrumentation only)."""

    def __init__(self, fn):
        self.fn, self.times = fn, []

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.times.append(time.perf_counter() - start)


def fill_log(home: Path, n: int, embedder) -> None:
    from soulctl.home import Home
    from soulctl.log import NewPacket, open_store

    store = open_store(Home(home))
    base = embedder.encode(sentences(2000, seed=3))
    vectors = realistic_vectors(base, n, np.random.default_rng(1))
    texts = sentences(n, seed=n)
    for s in range(0, n, 50_000):
        batch = [NewPacket(prose=t, session=f"old-{(s + i) % 200}", role="user" if i % 2 else "soul")
                 for i, t in enumerate(texts[s:s + 50_000])]
        store.add(batch, vectors[s:s + 50_000], embedder.model_id, index=False)
    store.reindex()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--reply-tokens", type=int, default=48)
    parser.add_argument("--think-ms", type=int, default=1000,
                        help="pause between turns, as a reader takes (0: back to back)")
    args = parser.parse_args()

    from soulctl.corpus import mounts
    from soulctl.embed import embedder_for
    from soulctl.home import Home
    from soulctl.log.duckdb import store as duckdb_store
    from soulctl.memory.session import ChatSession
    from soulctl.soul import Soul

    tmp = Path(tempfile.mkdtemp(prefix="soulctl-bench-chat-"))
    try:
        root = make_home(tmp)
        config = (root / "soul.yaml").read_text().replace("reply_tokens: 512", f"reply_tokens: {args.reply_tokens}")
        (root / "soul.yaml").write_text(config)
        home = Home(root)
        embedder = embedder_for(home.config, home.root)
        start = time.perf_counter()
        fill_log(root, args.packets, embedder)
        print(f"log: {args.packets} packets loaded and indexed in {time.perf_counter() - start:.1f} s")
        docs = tmp / "docs"
        docs.mkdir()
        for f in [REPO / "README.md", *sorted((REPO / "recipes").glob("*"))]:
            shutil.copy(f, docs / f.name)
        report = mounts.add(home, "docs", docs, embedder)
        mounts.use(home, ["docs"])
        print(f"corpus: docs mounted ({report.chunks} chunks)")

        soul = Soul(home)
        soul.__dict__["embedder"] = embedder  # the one already loaded (timed below)
        chat = ChatSession(soul, "bench")
        engine = chat.engine
        generate = Timed(engine.chat)
        engine.chat = generate
        assemble = Timed(chat.assemble)
        chat.assemble = assemble
        log_turn = Timed(chat._log_turn)
        chat._log_turn = log_turn
        settle = Timed(chat.settle)
        chat.settle = settle
        embed = Timed(embedder.encode)
        embedder.encode = embed
        upkeep = Timed(duckdb_store._Upkeep.run)  # the write, then indexes and checkpoint
        duckdb_store._Upkeep.run = lambda job: upkeep(job)
        chat.turn("Hello.")  # warm: first query, first write, opened indexes
        for t in (generate, assemble, log_turn, settle, upkeep, embed):
            t.times.clear()
        overhead, generation, embedding, flushes = [], [], [], 0
        for i in range(args.turns):
            time.sleep(args.think_ms / 1000)
            calls, embeds = len(generate.times), len(embed.times)
            start = time.perf_counter()
            result = chat.turn(QUESTIONS[i % len(QUESTIONS)])
            total = time.perf_counter() - start
            generation.append(sum(generate.times[calls:]))  # a flush adds the notebook rewrite
            overhead.append(total - generation[-1])
            embedding.append(sum(embed.times[embeds:]))
            flushes += result.flushed
        if flushes:
            print(f"({flushes} pressure flushes happened; their rewrite counts as generation)")

        def med(xs):
            return 1000 * statistics.median(xs)

        def p90(xs):
            return 1000 * sorted(xs)[int(0.9 * (len(xs) - 1))]

        print(f"Memory OS per turn (on the critical path) on {engine.name} ({engine.generation}), {args.packets} log packets, "
              f"{args.turns} turns, median (p90):")
        print(f"  assembly + retrieval   {med(assemble.times):7.1f} ms ({p90(assemble.times):.1f})")
        print(f"  logging (2 packets)    {med(log_turn.times):7.1f} ms ({p90(log_turn.times):.1f})")
        print(f"  waiting on upkeep      {med(settle.times):7.1f} ms ({p90(settle.times):.1f})   "
              f"[the write thread takes {med(upkeep.times):.1f} ms in all: the turn goes on once the "
              f"packets are committed; their index update and the checkpoint finish in the background "
              f"(a turn waits only if they are not done: {args.think_ms} ms between turns)]")
        print(f"  overhead, all but gen  {med(overhead):7.1f} ms ({p90(overhead):.1f})   target <= 50 ms")
        print(f"    of which embedding   {med(embedding):7.1f} ms ({p90(embedding):.1f})   "
              f"[the message and the reply, {embedder.model_id.split('@')[0]}]")
        print(f"  generation             {med(generation):7.1f} ms ({p90(generation):.1f})  "
              f"[{args.reply_tokens} reply tokens max]")
        print(f"  overhead / generation  {statistics.median(overhead) / statistics.median(generation):7.3f}")
        chat.settle()
        engine.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
