"""A year of nights, compressed: the nightly habit night after night on the embedded SmolLM2,
once per merge method, the same conversations for each (issue: growth that doesn't fade, a
merge whose cost is flat in history). Each night one new scripted conversation is logged, its
soul replies are marked, and `soulctl evolve` runs as a whole process.

Printed per night and method: buffer size, whether it holds only that night's replies,
absorption (the new generation's loss on its own night's buffer below its parent's), probe
loss Δ against the anchor, weight drift, the cycle's wall time and its merge step's. After the
nights, per method: every night's merge re-run in a fresh process (wall time and peak RSS of
that process alone, and whether it hashes as the night's generation), MLP and embedding
tensors against the anchor, and `gen gc` + `gen materialize` of the last generation against
its sha256. Then the comparison.

Goals (the method kept): the last night's absorption ≥ 0.5× night 1's; the probe loss within
recipes/anchor.yaml's bound every night; the last night's merge ≤ 1.3× night 2's in time and
≤ 1.1× in peak RSS (the highest of nights 2 to the last against night 2's).

After the nights, per method: the retention matrix — after night c (1, 5, 10, 20, 30 and the
last), the share of each earlier night's absorption the generation still holds, on that night's
buffer and on the slice it held out (`--holdout`: a share of each night's new replies, split by
a recorded seed, never trained on then or later) —, BWT and held-out absorption per night.

Run: .venv/bin/python tests/bench/bench_growth.py [--nights 30] [--methods ties,fold]
     [--reach 0.02] [--replies 25] [--epochs 1] [--holdout 0.2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

TOPICS = [
    ("the river", ["heron", "weir", "eddy", "willow", "otter"]),
    ("the lighthouse", ["lamp", "keeper", "fog", "gull", "logbook"]),
    ("the orchard", ["quince", "frost", "ladder", "bee", "cider"]),
    ("the observatory", ["comet", "lens", "dome", "nebula", "chart"]),
    ("the bakery", ["starter", "oven", "rye", "flour", "dawn"]),
    ("the mountain pass", ["cairn", "scree", "marmot", "snowfield", "rope"]),
    ("the library", ["index", "vellum", "reading lamp", "archive", "margin"]),
    ("the harbour", ["tide", "net", "buoy", "ferry", "salt"]),
    ("the greenhouse", ["fern", "seedling", "mist", "trellis", "orchid"]),
    ("the forge", ["anvil", "ember", "tongs", "bellows", "quench"]),
]
FEELINGS = ["patience", "wonder", "stubbornness", "gratitude", "restlessness", "calm", "curiosity"]
VERBS = ["taught me", "reminded me of", "showed me", "gave me", "asked me for", "left me with"]
QUESTIONS = ["What did you notice about the {t}?", "Tell me about the {t} again.",
             "Why does the {t} matter to you?", "What would you keep from the {t}?",
             "How did the {t} change today?"]


def templated(night: int, replies: int = 25) -> list[dict]:
    """One night's talk in the old shape: `replies` exchanges on one place, every reply cut
    from one sentence template (the parent soon knows the shape: absorption fades for that
    reason alone)."""
    place, things = TOPICS[night % len(TOPICS)]
    rng = random.Random(night)
    session = f"night-{night + 1:02d}"
    rows = []
    for i in range(replies):
        thing = things[i % len(things)]
        other = things[(i * 3 + 1) % len(things)]
        feeling = rng.choice(FEELINGS)
        rows.append({"prose": rng.choice(QUESTIONS).format(t=thing), "role": "user", "session": session})
        rows.append({"prose": f"At {place}, the {thing} {rng.choice(VERBS)} {feeling}; on night {night + 1} "
                              f"I counted {rng.randint(2, 97)} of them beside the {other}, and moment {i + 1} "
                              f"stays with me as {rng.choice(FEELINGS)}.",
                     "role": "soul", "session": session})
    return rows


# Varied nights: each night the soul talks about a different subject, in the subject's own
# sentences — the prose of Python's documentation for one module or language topic (on every
# machine with this Python; no download). Shapes and vocabulary change from night to night,
# as a year of real days would; the topics and modules alternate.
SUBJECTS = ["topic:types", "logging", "topic:compound", "decimal", "topic:specialnames", "difflib",
            "topic:execmodel", "threading", "topic:attribute-access", "smtplib", "topic:formatstrings",
            "statistics", "topic:assignment", "doctest", "topic:debugger", "pathlib", "topic:import", "codecs",
            "typing", "subprocess", "turtle", "shutil", "math", "tempfile", "inspect", "ssl", "calendar", "pdb",
            "random", "mailbox", "traceback", "zipfile", "io", "imaplib", "posix", "bz2", "collections", "time",
            "urllib.request", "base64"]
ASKS = ["What do you know about {s}?", "Tell me more about {s}.", "And then, about {s}?",
        "What else matters in {s}?", "Go on about {s}.", "What would you say next about {s}?"]
_SKIP = (">>>", "::", "|", "   ", "{", "}", "==", "->", "`", "*")


def _doc_text(subject: str) -> str:
    import importlib
    import inspect
    import warnings

    if subject.startswith("topic:"):
        from pydoc_data.topics import topics
        return topics[subject[6:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = importlib.import_module(subject)
    docs = [inspect.getdoc(module) or ""]
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        docs.append(inspect.getdoc(obj) or "")
        if inspect.isclass(obj):
            docs += [inspect.getdoc(o) or "" for n, o in sorted(vars(obj).items())
                     if not n.startswith("_") and callable(o)]
    return "\n\n".join(docs)


def subject_sentences(subject: str) -> list[str]:
    """The subject's documentation as plain sentences of 8–50 words, in order, no code."""
    import re

    out = []
    for para in _doc_text(subject).split("\n\n"):
        if any(mark in para for mark in _SKIP):
            continue
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(para.split())):
            if 8 <= len(sentence.split()) <= 50 and sentence.endswith("."):
                out.append(sentence)
    return list(dict.fromkeys(out))


def varied(night: int, replies: int = 25) -> list[dict]:
    """One night's talk on its own subject: `replies` exchanges, each reply one or two of the
    subject's sentences."""
    if night >= len(SUBJECTS):
        sys.exit(f"varied talk has {len(SUBJECTS)} subjects: at most {len(SUBJECTS)} nights")
    subject = SUBJECTS[night]
    said = subject_sentences(subject)
    if len(said) < replies:
        sys.exit(f"{subject}: {len(said)} sentences, fewer than {replies} replies")
    rng = random.Random(night)
    name = subject.removeprefix("topic:").replace("-", " ")
    session = f"night-{night + 1:02d}"
    rows = []
    for i in range(replies):
        reply = said[i] if i + replies >= len(said) or rng.random() < 0.5 else f"{said[i]} {said[replies + i]}"
        rows.append({"prose": rng.choice(ASKS).format(s=name), "role": "user", "session": session})
        rows.append({"prose": reply, "role": "soul", "session": session})
    return rows


TALK = {"varied": varied, "templated": templated}


def soulctl(home: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "soulctl", "--home", str(home), *args], input=input,
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def must(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        sys.exit(f"{' '.join(proc.args[3:])} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return proc


def set_recipe(home: Path, name: str, old: str, new: str) -> None:
    path = home / "recipes" / f"{name}.yaml"
    text = path.read_text()
    if old not in text:
        sys.exit(f"recipes/{name}.yaml has no {old!r}")
    path.write_text(text.replace(old, new, 1))


def night(home: Path, n: int, replies: int = 25, talk=varied) -> tuple[dict, set[str]]:
    rows = talk(n, replies)
    added = must(soulctl(home, "--json", "log", "add", "--jsonl", input="".join(json.dumps(r) + "\n" for r in rows)))
    ids = [json.loads(line) for line in added.stdout.splitlines()]
    soul_ids = {p["id"] for p in ids if p["role"] == "soul"}
    from soulctl.home import Home
    from soulctl.soul import Soul

    soul = Soul(Home(home))  # marks in one transaction, as a user's script would with `resonate mark`
    soul.store.mark_many([(pid, 1.0, "mark") for pid in sorted(soul_ids)])
    soul.close()
    t = time.perf_counter()
    proc = soulctl(home, "--json", "evolve")
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        must(proc)
    record = json.loads(proc.stdout)
    record["wall"] = wall
    return record, soul_ids


def untouched_identical(home: Path, gid: str) -> tuple[int, int]:
    """(tensors compared, tensors differing) over MLP and embedding tensors, gid vs the anchor."""
    from safetensors import safe_open

    compared = differing = 0
    for path in sorted((home / "generations" / "gen-0000").glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as a, \
                safe_open(str(home / "generations" / gid / path.name), framework="numpy") as b:
            for name in a.keys():
                if "mlp" in name or "embed" in name:
                    compared += 1
                    differing += int(a.get_tensor(name).tobytes() != b.get_tensor(name).tobytes())
    return compared, differing


def measured(home: Path, *args: str) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, stdout) of one soulctl command in its own process."""
    with tempfile.TemporaryFile() as out:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "soulctl", "--home", str(home), *args], stdout=out,
                                stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(args)} failed: {proc.stderr.read().decode()[-1500:]}")
        out.seek(0)
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def remerge(home: Path, night_gen: str) -> tuple[float, float, bool]:
    """The merge that made `night_gen`, again, in a fresh process: its parent made current,
    its new adapter merged into a new generation by the same recipe. Returns (wall s, peak RSS
    MiB, whether the new generation's files hash as night_gen's); the copy's weights are then
    dropped (its lineage stays), so thirty re-merges do not fill the disk."""
    from soulctl.generations import read_lineage
    from soulctl.generations.history import drop_weights
    from soulctl.home import Home

    lineage = read_lineage(Home(home), night_gen)
    parent_layers = set(read_lineage(Home(home), lineage.parent).adapters)
    new = [l["adapter"] for l in lineage.layers if l["adapter"] not in parent_layers]
    must(soulctl(home, "gen", "use", lineage.parent, "--no-wait"))
    wall, rss, out = measured(home, "--json", "merge", *new)
    copy = json.loads(out)["id"]
    same = read_lineage(Home(home), copy).hashes == lineage.hashes
    drop_weights(Home(home), copy)
    return wall, rss, same


def run_method(root: Path, method: str, args) -> dict:
    home = root / method / "home"
    must(soulctl(home, "init", str(home)))
    set_recipe(home, "dream", "epochs: 3", f"epochs: {args.epochs}")
    if args.holdout:  # each night's held-out slice, by a recorded seed (off in a home)
        with open(home / "recipes" / "resonate.yaml", "a") as recipe:
            recipe.write(f"holdout: {args.holdout}\nholdout_min_tokens: 500\nholdout_seed: 7\n")
    path = home / "recipes" / "merge.yaml"  # the method, and the folds' reach (none: 0)
    text = re.sub(r"^method: *\w+", f"method: {method}", path.read_text(), flags=re.M)
    text = re.sub(r"^reach: *[\d.]+", f"reach: {args.reach}" if args.reach else "", text, flags=re.M)
    path.write_text(text)
    limits = json.loads(must(soulctl(home, "--json", "evolve", "--dry-run")).stdout)["plan"]["check"]
    print(f"\n== {method}" + (f" (reach {args.reach})" if method != "ties" and args.reach else ""))
    print(f"{'night':>5} {'gen':>8} {'status':>8} {'buffer':>6} {'only new':>8} {'absorb':>8} {'probe Δ':>8} "
          f"{'drift':>9} {'wall s':>7} {'merge s':>7}")
    rows, learned = [], set()
    for n in range(args.nights):
        record, new_ids = night(home, n, args.replies, TALK[args.talk])
        buffer = json.loads((home / "data" / "buffers" / f"{record['buffer']}.json").read_text())
        in_buffer = set(buffer["log_ids"])
        only_new = in_buffer <= new_ids and not (in_buffer & learned)
        learned |= in_buffer
        rows.append({**record, "only_new": only_new, "buffer_size": len(in_buffer)})
        print(f"{n + 1:>5} {record['generation'] or '-':>8} {record['status']:>8} {len(in_buffer):>6} "
              f"{str(only_new):>8} {record.get('absorption') or 0:>+8.4f} {record.get('probe_loss_delta') or 0:>+8.4f} "
              f"{record.get('drift') or 0:>9.6f} {record['wall']:>7.1f} {record['timings'].get('merge', 0):>7.1f}",
              flush=True)
    gens = [r["generation"] for r in rows if r["status"] == "accepted"]
    last = gens[-1]
    retention_matrix(home, gens, rows)
    compared, differing = untouched_identical(home, last)
    from soulctl.generations import read_lineage
    from soulctl.generations.files import sha256_file
    from soulctl.home import Home

    hashes = read_lineage(Home(home), last).hashes
    print(f"\nevery night's merge again, each in a fresh process (its parent current, its new layer):\n"
          f"{'night':>5} {'gen':>8} {'merge s':>7} {'peak RSS':>8} {'same sha256':>11}")
    again = []
    for n, gid in enumerate(gens, 1):
        again.append(remerge(home, gid))
        print(f"{n:>5} {gid:>8} {again[-1][0]:>7.1f} {again[-1][1]:>6.0f} M {str(again[-1][2]):>11}", flush=True)
    second, final = again[1], again[-1]
    rss_max = max(a[1] for a in again[1:])
    must(soulctl(home, "gen", "use", "gen-0000", "--no-wait"))
    must(soulctl(home, "--json", "gen", "gc", "--keep", "0"))
    gone = not any((home / "generations" / last).glob("*.safetensors"))
    t = time.perf_counter()
    made = json.loads(must(soulctl(home, "--json", "gen", "materialize", last)).stdout)
    rebuild_s = time.perf_counter() - t
    reproduced = gone and made.get("identical", False) and all(
        sha256_file(home / "generations" / last / rel) == sha for rel, sha in hashes.items())
    absorb = [r.get("absorption") or 0 for r in rows]
    summary = {"method": method, "accepted": len(gens), "nights": len(rows),
               "only_new": all(r["only_new"] for r in rows), "absorb_first": absorb[0], "absorb_last": absorb[-1],
               "absorb_ratio": absorb[-1] / absorb[0] if absorb[0] else float("nan"),
               "probe_max": max(r.get("probe_loss_delta") or 0 for r in rows), "probe_bound": limits["max_probe_loss_delta"],
               "drift_max": max(r.get("drift") or 0 for r in rows), "drift_bound": limits["max_drift"],
               "merge_2": second, "merge_last": final, "rss_max": rss_max,
               "remerged_same": all(a[2] for a in again), "untouched": (compared, differing),
               "reproduced": reproduced, "rebuild_s": rebuild_s}
    print(f"merge in a fresh process: night 2 {second[0]:.1f} s / {second[1]:.0f} MiB, night {len(gens)} "
          f"{final[0]:.1f} s / {final[1]:.0f} MiB ({final[0] / second[0]:.2f}x time, {final[1] / second[1]:.2f}x RSS; "
          f"peak over nights 2–{len(gens)} {rss_max / second[1]:.2f}x night 2's); every re-merge hashed as its "
          f"night's generation: {summary['remerged_same']}")
    print(f"{last}: {compared} MLP/embedding tensors compared with the anchor, {differing} differ; gc + "
          f"materialize {last} ({rebuild_s:.1f} s) reproduces its sha256: {reproduced}")
    return summary


CHECKPOINTS = (1, 5, 10, 20, 30)


def retention_matrix(home: Path, gens: list[str], rows: list[dict]) -> dict:
    """After night c (at the checkpoints, and the last night), how much of each earlier night j
    the generation still holds — on night j's buffer and on the slice it held out — as a share
    of what night j absorbed when it was merged; BWT, the mean change of every night's loss
    reduction from when it was learned to the last night (nats/token; below 0: forgetting);
    held-out absorption per night."""
    from soulctl.evolve.anchor import retention
    from soulctl.generations.evaluate import Evaluator
    from soulctl.home import Home

    models = Evaluator(Home(home))
    at = sorted({c for c in CHECKPOINTS if c <= len(gens)} | {len(gens)})
    table = {}
    try:
        for c in at:
            table[c] = retention(Home(home), gens[c - 1], models)
    finally:
        models.close()
    for kind in ("trained", "held_out"):
        print(f"\nretention on each night's {'buffer' if kind == 'trained' else 'held-out slice'} "
              "(the share of what it absorbed still held), after night c:")
        print("    c " + "".join(f"{j:>6}" for j in range(1, len(gens) + 1)))
        for c in at:
            cells = [n.get(kind, {}).get("retention") for n in table[c]]
            print(f"{c:>5} " + "".join(f"{v:>6.2f}" if v is not None else f"{'-':>6}" for v in cells))
    last = table[len(gens)]
    result = {}
    for kind in ("trained", "held_out"):
        pairs = [(n[kind]["kept"], n[kind]["absorbed"]) for n in last[:-1] if kind in n]
        result[kind] = sum(k - a for k, a in pairs) / len(pairs) if pairs else None
    held = [r.get("held_out_absorption") for r in rows]
    print(f"BWT (nats/token, night {len(gens)} against each night when learned): buffer "
          + (f"{result['trained']:+.4f}" if result["trained"] is not None else "-") + ", held-out "
          + (f"{result['held_out']:+.4f}" if result["held_out"] is not None else "-"))
    print("held-out absorption per night: " + " ".join(f"{h:+.3f}" if h is not None else "-" for h in held)
          + f"  ({sum(1 for h in held if h is not None and h > 0)} of {len(held)} above 0)", flush=True)
    first = next((n for n in last if n["generation"] == gens[0]), None)
    return {"bwt": result, "held_out": held, "night_1": first}


def compare(results: list[dict]) -> None:
    print(f"\n{'method':>8} {'ok':>5} {'absorb 1':>9} {'absorb N':>9} {'N/1':>6} {'probe Δ max':>11} "
          f"{'drift max':>9} {'merge N/2 time':>14} {'RSS':>6} {'rebuilt':>8}")
    for r in results:
        print(f"{r['method']:>8} {r['accepted']:>2}/{r['nights']:<2} {r['absorb_first']:>+9.4f} "
              f"{r['absorb_last']:>+9.4f} {r['absorb_ratio']:>6.2f} {r['probe_max']:>+11.4f} {r['drift_max']:>9.6f} "
              f"{r['merge_last'][0] / r['merge_2'][0]:>14.2f} {r['rss_max'] / r['merge_2'][1]:>6.2f} "
              f"{str(r['reproduced']):>8}")
    print(f"goals: N/1 absorption ≥ 0.5; probe Δ ≤ {results[0]['probe_bound']} every night; "
          "merge N/2 ≤ 1.3x time, ≤ 1.1x RSS; untouched tensors identical; rebuilt to its sha256", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nights", "--cycles", type=int, default=30)
    ap.add_argument("--methods", default="ties,fold", help="comma-separated merge methods, each on its own home")
    ap.add_argument("--reach", type=float, default=0.02, help="the fold methods' reach (0: none)")
    ap.add_argument("--replies", type=int, default=25, help="soul replies in each night's conversation")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--holdout", type=float, default=0.2,
                    help="the share of each night's new replies held out, never trained on (0: none)")
    ap.add_argument("--talk", choices=sorted(TALK), default="varied",
                    help="each night a different subject's prose (varied) or one template (templated)")
    ap.add_argument("--keep", type=Path, help="build the homes here and keep them")
    args = ap.parse_args()
    if args.nights < 2:
        ap.error("--nights must be 2 or more (the merge is compared with night 2's)")
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-growth-"))
    try:
        results = []
        for method in args.methods.split(","):
            results.append(run_method(root, method, args))
            compare(results)  # after each method, so a cut-short run still compares what it ran
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
