"""Retrieval quality on the dev set (tests/data/devset): recall@k and MRR of `log search`
(hybrid, semantic, keyword) beside two baselines computed independently in the same run —
BM25 written here from its textbook formula (k1 1.2, b 0.75, lowercased words, no stemming)
and dense MiniLM (exact cosine with the same embedder, numpy) — and a chat turn's retrieval
overhead (embedding the user's words and searching, as the Memory OS does each turn).

Run: .venv/bin/python tests/bench/bench_recall.py [-k 10] [--home DIR]
(--home reuses a home that already holds the dev set; otherwise one is made in a temp dir.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
DEVSET = REPO / "tests" / "data" / "devset"
sys.path.insert(0, str(REPO))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def bm25_rank(docs: list[list[str]], query: list[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    n = len(docs)
    avg = sum(map(len, docs)) / n
    df = Counter(w for d in docs for w in set(d))
    scores = np.zeros(n)
    for i, d in enumerate(docs):
        tf = Counter(d)
        for w in set(query):
            if w in tf:
                idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                scores[i] += idf * tf[w] * (k1 + 1) / (tf[w] + k1 * (1 - b + b * len(d) / avg))
    return np.argsort(-scores, kind="stable")


def figures(ranked: dict[int, list[int]], gold: dict[int, set[int]], cats: dict[int, str], k: int) -> dict:
    out: dict[str, list] = {}
    for q, order in ranked.items():
        rank = next((i for i, d in enumerate(order[:k], 1) if d in gold[q]), None)
        for name in ("all", cats[q]):
            row = out.setdefault(name, [0, 0, 0.0])
            row[0] += 1
            row[1] += rank is not None
            row[2] += 1 / rank if rank else 0.0
    return {name: (found / n, rr / n) for name, (n, found, rr) in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--home")
    args = ap.parse_args()
    py = sys.executable
    tmp = None
    if args.home:
        home = Path(args.home)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="soulctl-bench-recall-")
        home = Path(tmp.name) / "home"
        subprocess.run([py, "-m", "soulctl", "init", str(home)], check=True, capture_output=True)
        with open(DEVSET / "conversations.jsonl", "rb") as fh:
            subprocess.run([py, "-m", "soulctl", "--home", str(home), "log", "add", "--jsonl"], stdin=fh,
                           check=True, capture_output=True)
    proc = subprocess.run([py, "-m", "soulctl", "--home", str(home), "--json", "log", "eval",
                           str(DEVSET / "questions.jsonl"), "-k", str(args.k), "--by", "dia_id"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    ours = json.loads(proc.stdout)

    # The baselines, from the dev set's files and the bundled embedder alone.
    from soulctl.embed import Embedder, bundled_model_dir

    turns = [json.loads(line) for line in (DEVSET / "conversations.jsonl").open()]
    questions = [json.loads(line) for line in (DEVSET / "questions.jsonl").open()]
    index = {t["meta"]["dia_id"]: i for i, t in enumerate(turns)}
    gold = {i: {index[e] for e in q["evidence"]} for i, q in enumerate(questions) if q["evidence"]}
    cats = {i: q["category"] for i, q in enumerate(questions)}
    docs = [words(t["prose"]) for t in turns]
    bm25 = {i: list(bm25_rank(docs, words(questions[i]["question"]))[:args.k]) for i in gold}
    embedder = Embedder(bundled_model_dir(), runtime="numpy")
    doc_vecs = embedder.encode([t["prose"] for t in turns])
    q_vecs = embedder.encode([questions[i]["question"] for i in gold])
    dense = {i: list(np.argsort(-(doc_vecs @ v), kind="stable")[:args.k]) for i, v in zip(gold, q_vecs)}
    base = {"BM25 (baseline)": figures(bm25, gold, cats, args.k), "dense MiniLM (baseline)": figures(dense, gold, cats, args.k)}

    categories = sorted({c for c in cats.values()})
    head = f"{'':26s} {'recall@' + str(args.k):>9s} {'MRR':>6s}  " + "  ".join(f"{c:>11s}" for c in categories)
    print(f"dev set: {len(turns)} turns, {len(questions)} questions ({ours['scored']} scored)\n{head}")
    for mode, m in ours["modes"].items():
        cells = "  ".join(f"{100 * m['categories'][c]['recall']:10.1f}%" for c in categories)
        print(f"{'soulctl ' + mode:26s} {100 * m['recall']:8.1f}% {m['mrr']:6.3f}  {cells}")
    for name, f in base.items():
        cells = "  ".join(f"{100 * f[c][0]:10.1f}%" for c in categories)
        print(f"{name:26s} {100 * f['all'][0]:8.1f}% {f['all'][1]:6.3f}  {cells}")

    # A chat turn's retrieval overhead: embed the user's words, search hybrid, in process.
    from soulctl.home import Home
    from soulctl.log import open_store
    from soulctl.log.search import search

    store = open_store(Home(home))
    timings = []
    for q in questions[:40]:
        start = time.perf_counter()
        search(store, embedder, q["question"], 8, "hybrid")
        timings.append(time.perf_counter() - start)
    print(f"\nper-turn retrieval (embed + hybrid search, in process): median {1000 * statistics.median(timings):.1f} ms")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
