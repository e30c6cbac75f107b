"""The golden anchor: how far each generation has drifted from generation 0, in weights and in
behaviour (loss on the recipes' probe set), and how much it absorbed (loss on the buffers it
learned from, against its parent). Generations are immutable, so measurements are cached in
data/anchor/<gen>.json."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from soulctl.errors import NotFound
from soulctl.evolve.training import read_buffer
from soulctl.generations import dropped_files, generation_ids, read_lineage, resolve
from soulctl.generations.evaluate import Evaluator
from soulctl.home import Home

if TYPE_CHECKING:
    from soulctl.soul import Soul


def probe_texts(home: Home) -> list[str]:
    from soulctl.home.recipes import recipe_file

    if (path := recipe_file(home, "probes.txt")) is not None:
        lines = [l.strip() for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
        if lines:
            return lines
    raise NotFound("no probe set (recipes/probes.txt)", hint="restore recipes/probes.txt")


def _cache_path(home: Home, gid: str) -> Path:
    return home.data / "anchor" / f"{gid}.json"


def _cached(home: Home, gid: str) -> dict:
    path = _cache_path(home, gid)
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return {}
    return {}


def _save(home: Home, gid: str, data: dict) -> None:
    path = _cache_path(home, gid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def probe_loss(home: Home, gid: str, models: Evaluator) -> float:
    cache = _cached(home, gid)
    if "probe_loss" not in cache:
        cache["probe_loss"] = round(models.text_loss(gid, probe_texts(home)), 6)
        _save(home, gid, cache)
    return cache["probe_loss"]


def buffer_loss(home: Home, gid: str, buffer_id: str, models: Evaluator, held_out: bool = False) -> float | None:
    """`gid`'s loss on a night's buffer, or on the slice that night held out (None: no such file)."""
    cache = _cached(home, gid)
    key = f"{'holdout' if held_out else 'buffer'}_loss:{buffer_id}"
    if key not in cache:
        path = home.buffers / (f"{buffer_id}.holdout" if held_out else f"{buffer_id}.jsonl")
        if not path.is_file():
            return None
        cache[key] = round(models.conversation_loss(gid, read_buffer(path)), 6)
        _save(home, gid, cache)
    return cache[key]


def drift(home: Home, ref: str | None = None, models: Evaluator | None = None, nights: bool = False) -> dict:
    """Weights drift (from lineage), probe loss vs the anchor, absorption vs the parent (on the
    night's buffer, and on the slice it held out when it held one); with `nights`, how much of
    every night it absorbed the generation still holds (retention)."""
    models = models or Evaluator(home)
    gid = resolve(home, ref)
    lineage = read_lineage(home, gid)
    anchor = lineage.anchor or generation_ids(home)[0]
    parent = lineage.parent
    weights = lineage.drift or {"overall": 0.0}
    anchor_probe = probe_loss(home, anchor, models)
    gen_probe = anchor_probe if gid == anchor else probe_loss(home, gid, models)
    report = {
        "id": gid, "anchor": anchor, "parent": parent,
        "weights": weights, "drift": weights.get("overall", 0.0),
        "probe_loss": gen_probe, "probe_ppl": round(math.exp(gen_probe), 4),
        "anchor_probe_loss": anchor_probe, "anchor_probe_ppl": round(math.exp(anchor_probe), 4),
        "probe_loss_delta": round(gen_probe - anchor_probe, 6),
        "absorption": None, "held_out_absorption": None, "buffers": [],
    }
    if parent:
        parent_layers = set(read_lineage(home, parent).adapters)
        new = [l for l in lineage.layers if l["adapter"] not in parent_layers]
        gains, held_gains = [], []
        for layer in new:
            buffer_id = _buffer_of(home, layer)
            if buffer_id is None:
                continue
            before = buffer_loss(home, parent, buffer_id, models)
            after = buffer_loss(home, gid, buffer_id, models)
            if before is None or after is None:
                continue
            gains.append(before - after)
            row = {"buffer": buffer_id, "parent_loss": before, "loss": after,
                   "parent_ppl": round(math.exp(before), 4), "ppl": round(math.exp(after), 4)}
            held_before = buffer_loss(home, parent, buffer_id, models, held_out=True)
            if held_before is not None:  # the night held a slice out: did it learn beyond its lines?
                held_after = buffer_loss(home, gid, buffer_id, models, held_out=True)
                held_gains.append(held_before - held_after)
                row.update(held_out_parent_loss=held_before, held_out_loss=held_after)
            report["buffers"].append(row)
        if gains:
            report["absorption"] = round(sum(gains) / len(gains), 6)
        if held_gains:
            report["held_out_absorption"] = round(sum(held_gains) / len(held_gains), 6)
    if nights:
        report["nights"] = retention(home, gid, models)
    return report


def retention(home: Home, gid: str, models: Evaluator) -> list[dict]:
    """Each night `gid` absorbed (each layer with its buffer, oldest first): what the night
    taught when it was merged — the loss on its buffer (and held-out slice) under the generation
    it made, against that generation's parent — and how much of it `gid` still holds. Retention
    is the share kept: (parent's loss − gid's) / (parent's loss − the night's generation's)."""
    chain, at = [], gid
    while at is not None:  # gid back to the anchor
        chain.append(at)
        at = read_lineage(home, at).parent
    layers_of = {g: set(read_lineage(home, g).adapters) for g in chain}
    rows = []
    for layer in read_lineage(home, gid).layers:
        buffer_id = _buffer_of(home, layer)
        made = next((g for g in reversed(chain) if layer["adapter"] in layers_of[g]), None)
        before = read_lineage(home, made).parent if made else None
        if buffer_id is None or before is None:
            continue
        row = {"adapter": layer["adapter"], "buffer": buffer_id, "generation": made}
        for kind, held in (("trained", False), ("held_out", True)):
            now = buffer_loss(home, gid, buffer_id, models, held)
            if now is None:
                continue
            parent, then = buffer_loss(home, before, buffer_id, models, held), buffer_loss(home, made, buffer_id, models, held)
            absorbed, kept = parent - then, parent - now
            row[kind] = {"absorbed": round(absorbed, 6), "kept": round(kept, 6),
                         "retention": round(kept / absorbed, 4) if absorbed > 0 else None}
        rows.append(row)
    return rows


def _buffer_of(home: Home, layer: dict) -> str | None:
    meta = home.adapters / layer["adapter"] / "meta.json"
    if meta.is_file():
        return json.loads(meta.read_text()).get("buffer")
    return None


def check(report: dict, max_drift: float | None, max_probe_loss: float | None,
          max_probe_loss_delta: float | None = None) -> list[str]:
    failures = []
    if max_probe_loss_delta is not None and report["probe_loss_delta"] > max_probe_loss_delta:
        failures.append(f"probe loss rose {report['probe_loss_delta']:+.4f} over the anchor, "
                        f"more than {max_probe_loss_delta}")
    if max_drift is not None and report["drift"] > max_drift:
        failures.append(f"weight drift {report['drift']:.6f} exceeds {max_drift}")
    if max_probe_loss is not None and report["probe_loss"] > max_probe_loss:
        failures.append(f"probe loss {report['probe_loss']:.4f} exceeds {max_probe_loss}")
    return failures


def gate(soul: Soul, ref: str | None, max_drift: float | None = None,
         max_probe_loss: float | None = None) -> tuple[dict, list[str]]:
    """A generation measured against the anchor and its limits: the flags given, else
    recipes/anchor.yaml's (max_drift, max_probe_loss_delta). (report, what failed)."""
    report = drift(soul.home, ref)
    if max_drift is not None or max_probe_loss is not None:
        return report, check(report, max_drift, max_probe_loss)
    limits = soul.recipe("anchor")
    return report, check(report, limits.max_drift, None, limits.max_probe_loss_delta)


def plot(home: Home, path: Path, fmt: str = "png") -> list[dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = Evaluator(home)
    reports = [drift(home, gid, models) for gid in generation_ids(home) if not dropped_files(home, gid)]
    xs = list(range(len(reports)))
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(xs, [r["drift"] for r in reports], "o-", color="tab:blue", label="weight drift")
    ax1.set_ylabel("relative weight drift from the anchor", color="tab:blue")
    ax1.set_xticks(xs, [r["id"] for r in reports], rotation=30)
    ax2 = ax1.twinx()
    ax2.plot(xs, [r["absorption"] or 0.0 for r in reports], "s--", color="tab:orange", label="absorption")
    ax2.plot(xs, [r["probe_loss_delta"] for r in reports], "^:", color="tab:red", label="probe loss Δ")
    ax2.set_ylabel("loss (nats/token)")
    fig.legend(loc="upper left")
    ax1.set_title("drift and absorption across generations")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format=fmt)
    plt.close(fig)
    return reports
