"""soulctl dream: train a LoRA adapter on a resonance buffer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soulctl.cli import state

HELP = """Train a LoRA adapter on a buffer (default: the newest in data/buffers/).

LoRA r 32, alpha 64, q_proj/k_proj/v_proj only — never the MLP — per recipes/dream.yaml,
with peft on torch (cpu / cuda / mps), or mlx-lm (Apple silicon; --device mlx). The loss curve is printed and saved with the adapter,
which is stored content-addressed under data/adapters/<id>/.
"""


def run(
    buffer: Annotated[Optional[str], typer.Argument(help="A buffer id (buf-…) or a .jsonl path.")] = None,
    export_bundle: Annotated[Optional[Path], typer.Option("--export-bundle", help="Write buffer + recipe + base reference, encrypted, for a remote GPU.")] = None,
    run_bundle: Annotated[Optional[Path], typer.Option("--run-bundle", help="Train from a bundle (on the GPU machine); needs --base and -o.")] = None,
    base: Annotated[Optional[Path], typer.Option("--base", help="With --run-bundle: a copy of the base generation's directory.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="With --run-bundle: the adapter bundle to write.")] = None,
    import_: Annotated[Optional[Path], typer.Option("--import", help="Bring back an adapter bundle written by --run-bundle.")] = None,
    key_file: Annotated[Optional[str], typer.Option("--key-file", help="32-byte key (raw, hex or base64); default $SOULCTL_BUNDLE_KEY.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the recipe's epochs.", min=1)] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Override the recipe's learning rate.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto (mlx on Apple silicon, else cuda, mps, cpu), cpu, cuda, mps, mlx.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing bundle file.")] = False,
) -> None:
    from soulctl.errors import UsageError
    from soulctl.evolve import bundle as bundles
    from soulctl.evolve.dream import dream

    out = state.out
    if run_bundle is not None:  # on the GPU machine: no soul home there
        if base is None or output is None:
            raise UsageError("--run-bundle needs --base DIR and -o FILE")
        key = bundles.load_key(key_file)
        with out.progress_bars() as progress:
            result = bundles.run_bundle(run_bundle, base, key, output, progress, force)
        out.record(result, id_key="bundle", human=lambda d: (
            f"trained on {d['device']}: loss {d['loss_before']:.4f} → {d['loss_after']:.4f}; wrote {d['bundle']}"))
        return
    home = state.home()
    if import_ is not None:
        result = bundles.import_bundle(home, import_, bundles.load_key(key_file))
        out.record(result, human=lambda d: f"imported {d['id']} (trained on {d['base_generation']})")
        return
    recipe = state.soul().recipe("dream", {"train": {"epochs": epochs, "learning_rate": learning_rate},
                                           "device": device})
    if export_bundle is not None:
        result = bundles.export_bundle(state.soul(), buffer, recipe, bundles.load_key(key_file),
                                        export_bundle, force)
        out.record(result, id_key="bundle", human=lambda d: (
            f"wrote {d['bundle']} ({d['buffer']} on {d['base_generation']}), encrypted"))
        return

    def on_step(point: dict) -> None:
        if out.verbose:
            out.info(f"step {point['step']:4d}  epoch {point['epoch']}  loss {point['loss']:.4f}")

    with out.progress_bars() as progress:
        result = dream(state.soul(), buffer, recipe, progress, on_step=on_step)
    curve = [p["loss"] for p in result["loss_curve"]]
    if not out.json:
        out.info("loss: " + " ".join(f"{x:.3f}" for x in _thin(curve, 16)))
    out.record({k: v for k, v in result.items()}, human=lambda d: (
        f"dreamt {d['id']} on {d['buffer']} from {d['base_generation']}: loss {d['loss_before']:.4f} → "
        f"{d['loss_after']:.4f} over {d['steps']} steps ({d['tokens_per_s']} tokens/s, {d['device']})"))
    out.hint(f"fold it into a new generation: soulctl merge {result['id']}")


def _thin(values: list[float], n: int) -> list[float]:
    if len(values) <= n:
        return values
    step = (len(values) - 1) / (n - 1)
    return [values[round(i * step)] for i in range(n)]
