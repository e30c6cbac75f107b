"""soulctl budget: will the models, KV cache and stores fit in RAM? (DESIGN §8)"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soulctl.cli import state
from soulctl.cli.output import Column, human_bytes, table

HELP = """RAM budget before launch; exit 1 when the total does not fit.

Weights, KV cache, compute buffers, prompt caches, the majordomo, the embedder, stores on disk
and an OS reserve, against total RAM (and the GPU-usable share on Apple silicon).

With no model flags the roles in soul.yaml are read. A model is a preset name (see
--list-presets), an HF model directory or a GGUF file.

Examples:

\b
  soulctl budget
  soulctl budget --model mistral-large-2407 --quant f16 --ctx 131072 --kv f16 --json
  soulctl budget --profile seed-stack
  soulctl budget -m mistral-large-2407 --quant q6_k --majordomo hermes-4-70b --majordomo-quant q8_0 --ram 512GiB --fit
"""


def run(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Soul model: preset, HF dir or GGUF.")] = None,
    quant: Annotated[Optional[str], typer.Option(help="Precision: f32 f16 bf16 q8_0 q6_k q5_k_m q4_k_m q4_0 q4_1 iq4_xs q2_k mlx-4bit mlx-8bit.")] = None,
    ctx: Annotated[Optional[int], typer.Option("--ctx", help="Context length in tokens (default: the model's).", min=1)] = None,
    kv: Annotated[Optional[str], typer.Option(help="KV cache dtype: f16 bf16 q8_0 q4_0.")] = None,
    slots: Annotated[Optional[int], typer.Option(help="Parallel sequences (llama-server -np).", min=1)] = None,
    majordomo: Annotated[Optional[str], typer.Option(help="Second model (the majordomo).")] = None,
    majordomo_quant: Annotated[Optional[str], typer.Option(help="The majordomo's precision.")] = None,
    majordomo_ctx: Annotated[Optional[int], typer.Option(help="The majordomo's context.", min=1)] = None,
    majordomo_kv: Annotated[Optional[str], typer.Option(help="The majordomo's KV dtype.")] = None,
    profile: Annotated[Optional[str], typer.Option(help="A named stack from recipes/budget.yaml (e.g. seed-stack).")] = None,
    ram: Annotated[Optional[str], typer.Option(help="Total RAM, e.g. 512GiB (default: detected).")] = None,
    os_reserve: Annotated[Optional[str], typer.Option(help="RAM kept for the OS (default: 1 GiB + 2%, 4 GiB + 2% on macOS).")] = None,
    apple: Annotated[Optional[bool], typer.Option("--apple/--no-apple", help="Budget for Apple silicon unified memory (default: detected).")] = None,
    gpu_share: Annotated[Optional[float], typer.Option(help="GPU-wirable share of RAM on Apple silicon (default 0.75 above 36 GB).", min=0.05, max=1.0)] = None,
    flash_attn: Annotated[bool, typer.Option("--flash-attn/--no-flash-attn", help="llama.cpp flash attention (smaller compute buffers).")] = True,
    prompt_cache: Annotated[Optional[str], typer.Option(help="Prompt-cache RAM per model (default: one context's KV, at most 8 GiB).")] = None,
    embedder: Annotated[bool, typer.Option("--embedder/--no-embedder", help="Count the embedder.")] = True,
    phase: Annotated[str, typer.Option("--phase", help="all (default), serve, dream, merge or night: the night's phases beside the day's server.")] = "all",
    fit: Annotated[bool, typer.Option("--fit", help="Solve the largest context (multiple of 256) that keeps --headroom free.")] = False,
    headroom: Annotated[Optional[str], typer.Option(help="Headroom to keep with --fit (default: 10% of RAM).")] = None,
    list_presets: Annotated[bool, typer.Option("--list-presets", help="List the model presets and exit.")] = False,
) -> None:
    from soulctl.budget.memory import fit_to
    from soulctl.budget.plan import plan_budget

    out = state.out
    if list_presets:
        from soulctl.budget.modelfiles import PRESETS

        out.rows(({"name": p.name, "title": p.title, "params": p.arch.param_count(),
                   "layers": p.arch.layers, "kv_heads": p.arch.kv_heads, "head_dim": p.arch.head_dim,
                   "context": p.arch.context, "native": p.native, "aliases": list(p.aliases)}
                  for p in PRESETS),
                 [Column("name"), Column("params", fmt=lambda v: f"{v / 1e9:.2f}B", align="right"),
                  Column("layers", align="right"), Column("kv_heads", align="right"),
                  Column("head_dim", align="right"), Column("context", align="right"),
                  Column("native"), Column("title")], id_key="name")
        return

    home = state.optional_home()
    budget = plan_budget(
        home=home, stores=state.soul().resident_files() if home else [], model=model, quant=quant, ctx=ctx, kv=kv, slots=slots,
        majordomo=majordomo, majordomo_quant=majordomo_quant, majordomo_ctx=majordomo_ctx,
        majordomo_kv=majordomo_kv, profile=profile, ram=ram, os_reserve=os_reserve, apple=apple,
        gpu_share=gpu_share, flash_attn=flash_attn, prompt_cache=prompt_cache,
        embedder=embedder)
    if phase not in PHASES:
        from soulctl.errors import UsageError

        raise UsageError(f"--phase {phase!r}", hint=f"use one of {', '.join(PHASES)}")
    fitted = fit_to(budget, headroom) if fit else None
    report = budget.as_dict()
    if fitted:
        report["fit"] = fitted
    report["phases"] = _phases(budget, home if model is None and profile is None else None)
    report["phase"] = phase
    out.record(report, human=_render, id_key="zone")
    for warning in report["warnings"]:
        out.warn(warning)
    if not budget.fits:
        out.error(f"over budget by {human_bytes(-budget.headroom_bytes)}",
                  hint="lower --ctx or --slots, use a smaller --quant or --kv, or try --fit")
        raise typer.Exit(1)
    night = report["phases"]["night"]
    # the phase asked about is judged alone; `night` is judged by the first phase that fails
    failing = [p for p, sides in night["phases"].items() if not any(side["fits"] for side in sides.values())]
    blamed = phase if phase in failing else failing[0] if phase == "night" and failing else None
    if blamed:
        out.error(f"the night's {blamed} does not fit even beside a released server",
                  hint=HINTS[blamed])
        raise typer.Exit(1)


HINTS = {"dream": "lower recipes/dream.yaml batch_size or max_seq_len, turn on gradient_checkpointing, "
                  "or train elsewhere (dream --export-bundle)",
         "merge": "free memory for the merge's largest tensor, or merge on a larger machine (gen materialize)"}


PHASES = ("all", "serve", "dream", "merge", "night")


def _phases(serve, home) -> dict:
    """The night's phases beside `serve` (this budget, command-line overrides included): by this
    home's dream recipe when the budget is soul.yaml's own stack, else by the shipped recipe for
    the named model (mlx on Apple silicon, peft elsewhere)."""
    from soulctl.evolve.night import home_plan, night_plan
    from soulctl.home.recipe_schemas import DreamRecipe

    if home is not None:
        return home_plan(state.soul(), serve)
    return night_plan(serve, DreamRecipe())


def _render(r: dict) -> str:
    lines = [] if r["phase"] in ("dream", "merge") else _serve_table(r)
    lines += _phase_table(r)
    return "\n".join(lines)


def _serve_table(r: dict) -> list[str]:
    rows = [(c["name"], c["role"], human_bytes(c["bytes"]), c["detail"]) for c in r["components"]]
    rows.append(("total", "", human_bytes(r["total_bytes"]), ""))
    rows.append(("ram", "", human_bytes(r["ram_bytes"]), r["ram_source"]))
    if r["gpu_limit_bytes"]:
        rows.append(("gpu-wired", "", human_bytes(r["gpu_bytes"]),
                     f"of {human_bytes(r['gpu_limit_bytes'])} Metal may wire by default"))
    rows.append(("headroom", "", human_bytes(r["headroom_bytes"]),
                 f"{100 * r['headroom_bytes'] / r['ram_bytes']:.1f}% of RAM"))
    lines = table(["COMPONENT", "ROLE", "SIZE", "DETAIL"], rows, ["left", "left", "right", "left"])
    total = 1 + len(r["components"])  # a rule above the total
    lines.insert(total, "-" * max(map(len, lines)))
    lines.append(f"zone: {r['zone']}")
    if r.get("fit"):
        f = r["fit"]
        lines.append(f"fit: largest context keeping {human_bytes(f['headroom_target_bytes'])} free "
                     f"is {f['context']} tokens (model trained for {f['model_context']})")
    return lines


def _phase_table(r: dict) -> list[str]:
    """The night beside the day: each phase's own size, then beside the running server and beside
    a released one (the soul's weights, KV cache and buffers freed; the rest stays)."""
    p = r["phases"]
    night = p["night"]["phases"]
    dream, t = p["dream"], p["dream"]["training"]
    rows = [("serve", human_bytes(p["serve"]["bytes"]), "-", "-", "soul.yaml's stack (above)")]
    for key, label in (("without_checkpointing", "dream"), ("with_checkpointing", "dream (ckpt)")):
        mark = " (recipe)" if dream["recipe"] == key else ""
        rows.append((label, human_bytes(dream[key]["bytes"]), *(_beside(night["dream"], k, dream[key]["bytes"])
                                                               for k in ("beside_server", "server_released")),
                     f"{t['trainer']}, batch {t['batch']} × {t['tokens']} tokens{mark}"))
    rows.append(("merge", human_bytes(p["merge"]["bytes"]), *(_beside(night["merge"], k, p["merge"]["bytes"])
                                                            for k in ("beside_server", "server_released")),
                 "streamed: the largest tensor touched"))
    lines = [""] + table(["PHASE", "NEEDS", "BESIDE THE SERVER", "SERVER RELEASED", "DETAIL"], rows,
                         ["left", "right", "left", "left", "left"])
    verdict = {"not needed": "the night fits beside the running server",
               "needed": "the night fits only with the soul's weights released (evolve asks the server)",
               "not enough": "the night does not fit even with the soul's weights released"}
    lines.append(f"night: {verdict[p['night']['release']]}")
    return lines


def _beside(phase: dict, key: str, own: int) -> str:
    beside = phase[key]
    total, ram = own + beside["beside_bytes"], beside["ram_bytes"]
    return f"{human_bytes(total)} of {human_bytes(ram)} " + ("fits" if total <= ram else "does not fit")
