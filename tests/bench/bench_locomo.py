"""Recall on real people's conversations: LoCoMo's dev half (snap-research/locomo, ACL 2024; five
of its ten conversations, kept beside the checkout in ../shared/data/locomo-dev, not in the
repository: no licence for redistribution is stated).

Loaded as every figure of this project is: each conversation one session of packets, prose
`"<speaker>: <text>"`, `meta.dia_id`, `meta.speaker`, `ts` the session's date and time plus one
second a turn; each question searched within its conversation's session with `log search -
--json -k 10` (JSON lines in); a question counts when any of the top k packets' `dia_id` is in
its `evidence`. Printed per LoCoMo category (1 multi-hop, 2 temporal, 3 open-domain, 4
single-hop, 5 adversarial) on each store, beside two baselines computed in the same run — BM25
from its textbook formula and dense MiniLM (exact cosine, the log's embedder) — and the share of
questions whose evidence reaches the context the soul sees: the retrieved sector of a chat turn
at the default budget, each conversation in a home of its own (one person's memory).

The re-ranking's weights (soulctl/log/rerank.json) are fitted here, on this half: `--fit`
computes every question's candidates and features through the search's own code on each
store's home, fits the trees five times — each time on four conversations (both stores'
candidates), scoring the fifth — and prints that leave-one-conversation-out recall beside the
search's; `--fit --write` then fits on all five and writes rerank.json.

Run: .venv/bin/python tests/bench/bench_locomo.py [--data DIR] [--stores duckdb,postgres]
     [--work DIR (keep and reuse the loaded homes)] [--no-context] [--plain] [--fit [--write]]
     [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "bench"))

from bench_recall import bm25_rank, words  # noqa: E402  (the same baselines as the long set's)

DEFAULT_DATA = REPO.parent / "shared" / "data" / "locomo-dev"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
K = 10
DEPTH = int(os.environ.get("LOCOMO_DEPTH", "0"))  # lab: the rankings' depth (default: the search's)


def when(text: str) -> dt.datetime:
    """`1:56 pm on 8 May, 2023` → a UTC datetime."""
    return dt.datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=dt.timezone.utc)


def conversation(path: Path) -> tuple[str, list[dict], list[dict]]:
    """(session id, packets as `log add --jsonl` lines, questions with evidence)."""
    data = json.loads(path.read_text())
    cid = path.stem
    session = f"locomo-{cid}"
    packets = []
    numbers = sorted(int(m.group(1)) for key in data if (m := re.fullmatch(r"session_(\d+)", key))
                     and isinstance(data[key], list))
    for n in numbers:
        start = when(data[f"session_{n}_date_time"])
        for i, turn in enumerate(data[f"session_{n}"]):
            packets.append({"prose": f"{turn['speaker']}: {turn['text']}", "role": "user", "session": session,
                            "ts": (start + dt.timedelta(seconds=i)).isoformat(),
                            "meta": {"dia_id": turn["dia_id"], "speaker": turn["speaker"]}})
    questions = [{"question": q["question"], "evidence": [e for e in q.get("evidence", []) if e],
                  "category": CATEGORIES[q["category"]], "session": session}
                 for q in data["qa"] if q.get("evidence")]
    return session, packets, questions


def soulctl(*args, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "soulctl", *map(str, args)], input=input, capture_output=True,
                          text=True, check=True, cwd=REPO)


def load(home: Path, store: str, packets: list[dict], template: Path | None) -> float:
    """A home holding `packets`: made (`init`, or a copy of `template`), then `log add --jsonl`.
    Returns the add's wall time."""
    if template is not None and store == "duckdb":
        from tests.conftest import copy_home

        copy_home(template, home)
    else:
        soulctl("init", home, *(["--store", "postgres+embedded"] if store == "postgres" else []))
    started = time.perf_counter()
    soulctl("--home", home, "log", "add", "--jsonl", input="".join(json.dumps(p) + "\n" for p in packets))
    return time.perf_counter() - started


def searched(home: Path, questions: list[dict], k: int, extra: tuple = ()) -> dict[int, list[str]]:
    """Each question's top-k dia_ids, all asked in one `log search -` process."""
    lines = "".join(json.dumps({"query": q["question"], "session": q["session"], "id": i}) + "\n"
                    for i, q in enumerate(questions))
    out = soulctl("--home", home, "--json", "log", "search", "-", "-k", k, *extra, input=lines).stdout
    hits = defaultdict(list)
    for line in out.splitlines():
        row = json.loads(line)
        hits[int(row["query_id"])].append((row.get("meta") or {}).get("dia_id"))
    return hits


def scores(ranked: dict[int, list[str]], questions: list[dict]) -> dict[str, dict]:
    """recall@10, recall@5 and MRR (first evidence in the top 10) per category and overall."""
    table = defaultdict(lambda: {"n": 0, "r10": 0, "r5": 0, "rr": 0.0})
    for i, q in enumerate(questions):
        gold = set(q["evidence"])
        found = ranked.get(i, [])[:K]
        first = next((rank for rank, d in enumerate(found, 1) if d in gold), None)
        for key in (q["category"], "all"):
            row = table[key]
            row["n"] += 1
            row["r10"] += first is not None
            row["r5"] += first is not None and first <= 5
            row["rr"] += 1 / first if first else 0.0
    return {key: {"questions": r["n"], "recall@10": round(r["r10"] / r["n"], 3),
                  "recall@5": round(r["r5"] / r["n"], 3), "mrr": round(r["rr"] / r["n"], 3)}
            for key, r in table.items()}


def baselines(convs: list[tuple], embedder) -> dict[str, dict[int, list[str]]]:
    """BM25 and dense MiniLM over each conversation's turns, for its own questions."""
    bm25, dense, offset = {}, {}, 0
    for session, packets, questions in convs:
        docs = [words(p["prose"]) for p in packets]
        ids = [p["meta"]["dia_id"] for p in packets]
        vectors = embedder.encode([p["prose"] for p in packets])
        asked = embedder.encode([q["question"] for q in questions])
        for j, q in enumerate(questions):
            bm25[offset + j] = [ids[i] for i in bm25_rank(docs, words(q["question"]))[:K]]
            dense[offset + j] = [ids[i] for i in np.argsort(-(vectors @ asked[j]), kind="stable")[:K]]
        offset += len(questions)
    return {"BM25": bm25, "dense MiniLM": dense}


def in_context(template: Path, work: Path, convs: list[tuple]) -> dict[int, list[str]]:
    """For each question, the dia_ids of the packets the retrieved sector of a chat turn holds
    (the default budget; a conversation's home its own, the chat a new session)."""
    from soulctl.home import Home
    from soulctl.memory.retrieval import retrieved_sector
    from soulctl.memory.session import ChatSession
    from soulctl.soul import Soul

    reached, offset = {}, 0
    for session, packets, questions in convs:
        home = work / f"context-{session}"
        if not home.exists():
            load(home, "duckdb", packets, template)
        with Soul(Home(home)) as soul:
            chat = ChatSession(soul, "bench-context")
            by_id = {p.id: (p.meta or {}).get("dia_id") for p in soul.store.list(_all())}
            for j, q in enumerate(questions):
                _, cites = retrieved_sector(chat, q["question"])
                reached[offset + j] = [by_id.get(c.removeprefix("log:")) for c in cites if c.startswith("log:")]
        offset += len(questions)
    return reached


def _all():
    from soulctl.log import Filters

    return Filters()


def candidates(home: Path, convs: list[tuple]) -> list[dict]:
    """Each question's candidates as the search gathers them, with their features and labels
    (1: the turn is evidence), through soulctl's own ranking code."""
    from soulctl.home import Home
    from soulctl.log import Filters
    from soulctl.log import rank
    from soulctl.log.search import hybrid_depth
    from soulctl.soul import Soul

    rows = []
    with Soul(Home(home)) as soul, soul.store.candidates() as c:
        encode = soul.embedder.encode
        for ci, (session, _, questions) in enumerate(convs):
            vectors = encode([q["question"] for q in questions])
            for q, vector in zip(questions, vectors):
                filters = Filters(session=session)
                question, rankings = rank.gathered(c, vector, q["question"], DEPTH or hybrid_depth(K),
                                                   filters, encode)
                seqs, x, packets = rank.pool(c, question, rankings)
                dia = [(packets[s].meta or {}).get("dia_id") for s in seqs]
                rows.append({"conv": ci, "question": q, "x": x, "dia": dia, "packets": [packets[s] for s in seqs],
                             "y": np.array([d in set(q["evidence"]) for d in dia], float)})
    return rows


def ranked_by(rows: list[dict], models: list[dict]) -> dict[int, list[str]]:
    """Each question's top K dia_ids under its conversation's model (soulctl's own evaluator),
    restated questions pushed down as the search does."""
    from soulctl.log.rerank import scores as rerank_scores
    from soulctl.log.search import restates

    out = {}
    for i, r in enumerate(rows):
        order = np.argsort(-rerank_scores(r["x"], models[r["conv"]]), kind="stable")
        order = sorted(order[:K + 10], key=lambda j: restates(r["question"]["question"], r["packets"][j]))
        out[i] = [r["dia"][j] for j in order[:K]]
    return out


# The trees' settings, chosen on this half leave-one-conversation-out among 150–500 trees of
# 7–31 leaves (all within 0.852–0.869 recall@10 on pools of 80 a ranking): small trees, many.
TREES = {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 7}
# What each feature means, as constraints: the score may only rise (1) or only fall (−1) with
# it. Unconstrained, the trees learn LoCoMo's quirks — a turn that repeats the question is seldom
# its evidence ("too close is wrong"), the other speaker's turn as likely as the named one's —
# that a soul's own small log then shows in its first places (tests/func/log/test_recall_stages).
MONOTONE = {**dict.fromkeys(("sim", "sim_asked", "rank_semantic", "rank_keyword", "rank_dated", "rank_speaker",
                             "covered", "covered_rare", "bm25", "bigrams", "speaker_named", "names", "date_cue",
                             "in_span", "numbers"), 1),
            **dict.fromkeys(("speaker_other", "greeting"), -1)}


def fit(rows: list[dict]) -> dict:
    """Gradient-boosted trees on the rows' features, the classes weighed alike, in rerank.json's form."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from soulctl.log import rerank

    names = [*rerank.FEATURES, *(f"{f}_gap" for f in rerank.FEATURES[:rerank.GAPPED])]
    m = HistGradientBoostingClassifier(**TREES, class_weight="balanced", early_stopping=False, random_state=0,
                                       monotonic_cst=[MONOTONE.get(n.removesuffix("_gap"), 0) for n in names])
    m.fit(np.vstack([rerank.widened(r["x"]) for r in rows]), np.concatenate([r["y"] for r in rows]))
    trees = [{"feature": n["feature_idx"].tolist(), "threshold": n["num_threshold"].tolist(),
              "left": n["left"].tolist(), "right": n["right"].tolist(), "leaf": n["is_leaf"].astype(bool).tolist(),
              "missing_left": n["missing_go_to_left"].astype(bool).tolist(),
              "value": [round(v, 6) for v in n["value"].tolist()]}
             for n in (p[0].nodes for p in m._predictors)]
    return {"features": [*rerank.FEATURES, *(f"{f}_gap" for f in rerank.FEATURES[:rerank.GAPPED])],
            "baseline": float(np.ravel(m._baseline_prediction)[0]), "trees": trees}


def fitted(by_store: dict[str, list[dict]], convs: list[tuple], write: bool) -> dict[str, dict]:
    """Leave-one-conversation-out: each conversation ranked by trees fitted on the others, the
    candidates of every store given together (one model for both: their keyword halves differ)."""
    from soulctl.log import rerank

    everything = [r for rows in by_store.values() for r in rows]
    held = [rerank.as_arrays(fit([r for r in everything if r["conv"] != ci])) for ci in range(len(convs))]
    figures = {}
    for store, rows in by_store.items():
        questions = [r["question"] for r in rows]
        figures[f"{store} re-ranked LOCO"] = scores(ranked_by(rows, held), questions)
        figures[f"{store} pool ceiling"] = scores(
            {i: [d for d, y in zip(r["dia"], r["y"]) if y][:1] for i, r in enumerate(rows)}, questions)
    if write:
        model = {"fitted": f"tests/bench/bench_locomo.py --fit --write: {len(convs)} LoCoMo dev conversations, "
                           f"{len(everything)} questions' candidates from {', '.join(by_store)}, {TREES}",
                 **fit(everything)}
        path = Path(rerank.__file__).with_name("rerank.json")
        path.write_text(json.dumps(model, separators=(",", ":")) + "\n")
        rerank.trees.cache_clear()
        for store, rows in by_store.items():
            figures[f"{store} in-sample"] = scores(ranked_by(rows, [rerank.trees()] * len(convs)),
                                                   [r["question"] for r in rows])
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return figures


def show(title: str, rows: dict[str, dict], key: str = "recall@10") -> None:
    order = ["all", *CATEGORIES.values()]
    print(f"\n{title} ({key})")
    print(f"{'':18s}" + "".join(f"{c:>13s}" for c in order))
    for name, table in rows.items():
        print(f"{name:18s}" + "".join(f"{table.get(c, {}).get(key, float('nan')):13.3f}" for c in order))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--stores", default="duckdb,postgres")
    parser.add_argument("--work", type=Path, help="keep the loaded homes here, and reuse them")
    parser.add_argument("--no-context", action="store_true", help="skip the retrieved-sector measure")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--plain", action="store_true", help="also the plain ranking (--plain on log search)")
    parser.add_argument("--fit", action="store_true", help="fit the re-ranking leave-one-conversation-out")
    parser.add_argument("--write", action="store_true", help="with --fit: fit on all five, write rerank.json")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.json")) if args.data.is_dir() else []
    if not files:
        sys.exit(f"no LoCoMo conversations in {args.data}: the dev half lives beside the checkout in "
                 f"../shared/data/locomo-dev (pass --data DIR)")
    convs = [conversation(f) for f in files]
    packets = [p for _, ps, _ in convs for p in ps]
    questions = [q for _, _, qs in convs for q in qs]
    per = ", ".join(f"{c} {sum(q['category'] == c for q in questions)}" for c in CATEGORIES.values())
    print(f"LoCoMo dev half: {len(convs)} conversations, {len(packets)} turns, {len(questions)} questions "
          f"with evidence ({per})")
    work = args.work or Path(tempfile.mkdtemp(prefix="soulctl-locomo-"))
    work.mkdir(parents=True, exist_ok=True)
    template = work / "template"
    if not template.exists():
        soulctl("init", template)
    from soulctl.embed import Embedder, bundled_model_dir

    embedder = Embedder(bundled_model_dir())
    rows, figures = {}, {}
    for name, ranked in baselines(convs, embedder).items():
        rows[name] = figures[name] = scores(ranked, questions)
    for store in [s for s in args.stores.split(",") if s]:
        home = work / f"home-{store}"
        if not home.exists():
            seconds = load(home, store, packets, template)
            print(f"{store}: {len(packets)} packets added in {seconds:.1f} s")
        started = time.perf_counter()
        found = searched(home, questions, K)
        elapsed = time.perf_counter() - started
        rows[f"soulctl {store}"] = figures[f"soulctl {store}"] = scores(found, questions)
        print(f"{store}: {len(questions)} questions searched in {elapsed:.1f} s (one process)")
        if args.plain:
            rows[f"{store} plain"] = figures[f"{store} plain"] = scores(searched(home, questions, K, ("--plain",)),
                                                                          questions)
        if store == "postgres":
            soulctl("--home", home, "store", "stop")
    if args.fit:
        started = time.perf_counter()
        by_store = {}
        for store in [s for s in args.stores.split(",") if s] or ["duckdb"]:
            home = work / f"home-{store}"
            if not home.exists():
                load(home, store, packets, template)
            by_store[store] = candidates(home, convs)
            if store == "postgres":
                soulctl("--home", home, "store", "stop")
        found = fitted(by_store, convs, args.write)
        print(f"fit: {time.perf_counter() - started:.1f} s")
        rows.update(found)
        figures.update(found)
    if not args.no_context:
        reached = in_context(template, work, convs)
        rows["in the context"] = figures["in the context"] = scores(reached, questions)
    for key in ("recall@10", "recall@5", "mrr"):
        show("LoCoMo dev half", rows, key)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
