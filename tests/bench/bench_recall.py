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
import shutil
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


def load(home: Path, store: str, turns: list[dict]) -> None:
    py = sys.executable
    subprocess.run([py, "-m", "soulctl", "init", str(home), *(["--store", store] if store != "duckdb" else [])],
                   check=True, capture_output=True)
    subprocess.run([py, "-m", "soulctl", "--home", str(home), "log", "add", "--jsonl"], check=True,
                   capture_output=True, input="".join(json.dumps(t) + "\n" for t in turns).encode())


def log_eval(home: Path, questions: list[dict], k: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
        fh.write("".join(json.dumps(q) + "\n" for q in questions))
    proc = subprocess.run([sys.executable, "-m", "soulctl", "--home", str(home), "--json", "log", "eval", fh.name,
                           "-k", str(k), "--by", "dia_id"], capture_output=True, text=True)
    os.unlink(fh.name)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout)


def baselines(turns: list[dict], questions: list[dict], k: int, embedder) -> dict[str, dict]:
    """BM25 and dense MiniLM over one conversation: {name: {category: [n, found, rr]}}."""
    index = {t["meta"]["dia_id"]: i for i, t in enumerate(turns)}
    gold = {i: {index[e] for e in q["evidence"]} for i, q in enumerate(questions) if q["evidence"]}
    cats = {i: q["category"] for i, q in enumerate(questions)}
    docs = [words(t["prose"]) for t in turns]
    bm25 = {i: list(bm25_rank(docs, words(questions[i]["question"]))[:k]) for i in gold}
    doc_vecs = embedder.encode([t["prose"] for t in turns])
    q_vecs = embedder.encode([questions[i]["question"] for i in gold])
    dense = {i: list(np.argsort(-(doc_vecs @ v), kind="stable")[:k]) for i, v in zip(gold, q_vecs)}
    return {"BM25 (baseline)": counts(bm25, gold, cats, k), "dense MiniLM (baseline)": counts(dense, gold, cats, k)}


def counts(ranked: dict[int, list[int]], gold: dict[int, set[int]], cats: dict[int, str], k: int) -> dict:
    out: dict[str, list] = {}
    for q, order in ranked.items():
        rank = next((i for i, d in enumerate(order[:k], 1) if d in gold[q]), None)
        for name in ("all", cats[q]):
            row = out.setdefault(name, [0, 0, 0.0])
            row[0] += 1
            row[1] += rank is not None
            row[2] += 1 / rank if rank else 0.0
    return out


def add(total: dict, part: dict) -> None:
    for name, row in part.items():
        have = total.setdefault(name, [0, 0, 0.0])
        for i in range(3):
            have[i] += row[i]


def from_eval(mode: dict, scored: int) -> dict:
    """log eval's figures for one mode as {category: [n, found, rr]}."""
    out = {"all": [scored, round(mode["recall"] * scored), mode["mrr"] * scored]}
    for name, c in mode["categories"].items():
        out[name] = [c["questions"], round(c["recall"] * c["questions"]), c["mrr"] * c["questions"]]
    return out


def table(title: str, rows: dict[str, dict], k: int) -> None:
    categories = sorted({c for r in rows.values() for c in r if c != "all"})
    print(f"\n{title}\n{'':30s} {'recall@' + str(k):>9s} {'MRR':>6s}  " + "  ".join(f"{c:>16s}" for c in categories))
    for name, r in rows.items():
        n, found, rr = r["all"]
        cells = "  ".join(f"{100 * r[c][1] / r[c][0]:8.1f}% {r[c][2] / r[c][0]:.3f}" if r.get(c) else f"{'-':>16s}"
                          for c in categories)
        print(f"{name:30s} {100 * found / n:8.1f}% {rr / n:6.3f}  {cells}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--set", dest="devset", choices=("longset", "devset"), default="longset",
                    help="longset: 8 households, one home each (default); devset: the first, 3 people in one home")
    ap.add_argument("--stores", default="duckdb,postgres+embedded", help="comma-separated, each in its own homes")
    ap.add_argument("--work", type=Path, help="make the homes here (default: a temporary directory)")
    args = ap.parse_args()
    data = REPO / "tests" / "data" / args.devset
    turns = [json.loads(line) for line in (data / "conversations.jsonl").open()]
    questions = [json.loads(line) for line in (data / "questions.jsonl").open()]
    convs = sorted({t["meta"]["conv"] for t in turns}) if args.devset == "longset" else ["all"]
    part = (lambda rows, c: [r for r in rows if c == "all" or r.get("conv", r.get("meta", {}).get("conv")) == c])
    root = Path(tempfile.mkdtemp(prefix="soulctl-bench-recall-", dir=args.work))
    from soulctl.embed import Embedder, bundled_model_dir

    embedder = Embedder(bundled_model_dir(), runtime="numpy")
    rows: dict[str, dict] = {}
    try:
        for conv in convs:
            conv_turns, conv_questions = part(turns, conv), part(questions, conv)
            for name, figs in baselines(conv_turns, conv_questions, args.k, embedder).items():
                add(rows.setdefault(name, {}), figs)
            for store in args.stores.split(","):
                home = root / f"{conv}-{store.split('+')[0]}"
                load(home, store, conv_turns)
                ours = log_eval(home, conv_questions, args.k)
                for mode, m in ours["modes"].items():
                    add(rows.setdefault(f"{store.split('+')[0]} {mode}", {}), from_eval(m, ours["scored"]))
                if store != "duckdb":
                    subprocess.run([sys.executable, "-m", "soulctl", "--home", str(home), "store", "stop"],
                                   capture_output=True)
            print(f"{conv}: {len(conv_turns)} turns, {len(conv_questions)} questions", file=sys.stderr, flush=True)
        unanswerable = sum(not q["evidence"] for q in questions)
        table(f"{args.devset}: {len(turns)} turns in {len(convs)} home(s), {len(questions)} questions "
              f"({unanswerable} adversarial: no evidence, not scored); each cell recall@{args.k} and MRR", rows, args.k)
        retrieval_overhead(root / f"{convs[0]}-duckdb", questions, embedder)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def retrieval_overhead(home: Path, questions: list[dict], embedder) -> None:
    """A chat turn's retrieval: embed the user's words, search hybrid, in process."""
    from soulctl.home import Home
    from soulctl.log import open_store
    from soulctl.log.search import search

    store = open_store(Home(home))
    timings = []
    for q in questions[:40]:
        start = time.perf_counter()
        search(store, embedder, q["question"], 8, "hybrid")
        timings.append(time.perf_counter() - start)
    store.close()
    print(f"\nper-turn retrieval (embed + hybrid search, in process): median {1000 * statistics.median(timings):.1f} ms")


if __name__ == "__main__":
    main()
