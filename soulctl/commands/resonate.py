"""soulctl resonate: score, mark, cluster and select high-resonance moments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soulctl.cli import options, state
from soulctl.cli.output import Column

app = typer.Typer(help="Resonance: mark, score, list, cluster and buffer the moments that resonate.",
                  no_args_is_help=True)


def _ctx():
    """(home, store, the resonate recipe) of the soul this command runs in."""
    soul = state.soul()
    return soul.home, soul.store, soul.recipe("resonate")


@app.command("mark")
def mark(
    packet_id: Annotated[str, typer.Argument(help="The packet (id or unique prefix).")],
    score: Annotated[float, typer.Argument(help="Resonance in [0, 1].")],
) -> None:
    """Mark a packet's resonance explicitly (a new record; the packet never changes)."""
    from soulctl.evolve.resonate import mark as run

    _, store, _ = _ctx()
    state.out.record({"id": run(store, packet_id, score), "resonance": score, "source": "mark"},
                     human=lambda d: f"marked {d['id']} at {d['resonance']}")


@app.command("score")
def score(
    role: Annotated[str, typer.Option(help="Whose packets to score.")] = "soul",
    judge: Annotated[bool, typer.Option("--judge", help="Also ask the majordomo (else the soul) with the recipe's rubric.")] = False,
    rescore: Annotated[bool, typer.Option("--rescore", help="Score every packet again, not only those not scored yet.")] = False,
) -> None:
    """Score novelty against the log's vectors, optionally a judge's rubric score, and combine
    them with explicit marks by the weights in recipes/resonate.yaml.

    Only packets not scored yet are scored (their novelty against every earlier packet, through
    the log's vector index); --rescore scores them all again, e.g. after changing the weights.
    """
    from soulctl.evolve.resonate import engine_judge
    from soulctl.evolve.resonate import score as run

    soul = state.soul()
    judge_fn = None
    if judge:
        judge_fn = engine_judge(soul.engine("majordomo" if "majordomo" in soul.config.roles else "soul"))
    with state.out.progress_bars() as progress:
        result = run(soul.store, soul.recipe("resonate"), role, judge_fn, progress, rescore)
    state.out.record(result, id_key="scored", human=lambda d: f"scored {d['scored']} {d['role']} "
                     f"packets (mean resonance {d['mean']:.3f}; {d['flawed']} degenerate, capped)"
                     if d["mean"] is not None else "nothing to score")


@app.command("top")
def top(
    n: Annotated[int, typer.Option("-n", help="How many.")] = 20,
    role: Annotated[Optional[str], typer.Option(help="Only this role.")] = None,
) -> None:
    """List the most resonant packets, each with what makes it degenerate (if anything); on
    stderr, how many replies qualify for the next buffer and why the rest do not."""
    from soulctl.evolve.buffer import census, census_line
    from soulctl.evolve.resonate import top as run
    from soulctl.prose import flaws

    home, store, recipe = _ctx()
    rows = ({**p.as_dict(), "flaws": flaws(p.prose) if p.role == "soul" else []} for p in run(store, n, role))
    state.out.rows(rows, [Column("resonance", "res", fmt=lambda v: f"{v:.3f}", align="right"),
                          Column("resonance_source", "source"), Column("id"), Column("role"),
                          Column("flaws", fmt=lambda f: ",".join(f) or "-"),
                          Column("prose", fmt=lambda t: options.snippet(t, 60))],
                   empty="no resonance yet: soulctl resonate score")
    if store.count():
        state.out.info(census_line(census(home, store, recipe.threshold)))


@app.command("clusters")
def clusters(
    k: Annotated[int, typer.Option("-k", help="Number of clusters.", min=1)] = 4,
    threshold: Annotated[Optional[float], typer.Option(help="Resonance at least (default: the recipe's).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Draw a 2-D projection to FILE.png.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing plot file.")] = False,
) -> None:
    """k-means over the vectors of high-resonance replies."""
    from soulctl.evolve.resonate import clusters as run
    from soulctl.evolve.resonate import plot_clusters
    from soulctl.outfile import check_output, image_format, output_path

    home, store, recipe = _ctx()
    if plot:
        check_output(plot, force, state.soul())  # the home's own state first
        fmt = image_format(plot)
    result = run(store, recipe.threshold if threshold is None else threshold, k)
    if plot:
        with output_path(plot, force, state.soul()) as tmp:
            plot_clusters(result, tmp, fmt)
        state.out.hint(f"wrote {plot}")
    state.out.rows(({k_: v for k_, v in c.items() if k_ != "ids"} | {"ids": c["ids"]}
                    for c in result["clusters"]),
                   [Column("cluster", align="right"), Column("size", align="right"),
                    Column("example", fmt=lambda t: options.snippet(t, 80))], id_key="cluster")


@app.command("buffer")
def buffer(
    threshold: Annotated[Optional[float], typer.Option(help="Resonance at least (default: the recipe's).")] = None,
    cluster: Annotated[Optional[int], typer.Option(help="Only this cluster (see `resonate clusters`).")] = None,
    k: Annotated[int, typer.Option("-k", help="Clusters, with --cluster.")] = 4,
    include_learned: Annotated[bool, typer.Option("--include-learned", help="Also the moments the current generation's layers already learned.")] = False,
) -> None:
    """Write a chat-format training buffer (data/buffers/<id>.jsonl) from resonant replies.

    Only moments that no adapter layer of the current generation has learned from (the
    lineage records their log ids), plus the recipe's `rehearsal` share of learned ones.
    """
    from soulctl.evolve.buffer import build_buffer, census_line

    home, store, recipe = _ctx()
    result = build_buffer(home, store, recipe, threshold, cluster, k, include_learned=include_learned)
    state.out.record({k_: v for k_, v in result.items()}, human=lambda d: (
        f"wrote {d['id']}: {d['examples']} examples (threshold {d['threshold']}, "
        f"{d['dropped_duplicates']} near-duplicates dropped, {d['skipped_learned']} already learned) "
        f"→ {d['path']}\n{census_line(d['census'])}"))
