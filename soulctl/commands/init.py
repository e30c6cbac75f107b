"""soulctl init: create a soul home and materialize generation 0 (the golden anchor)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soulctl.cli import state

HELP = """Create a soul home and materialize generation 0, the golden anchor.

Generation 0 is an HF safetensors directory dequantized from the bundled SmolLM2-135M-Instruct
GGUF, or built from the GGUF / HF model directory given to --base. Refuses (exit 4) when DIR is
already a soul home.

Examples:

\b
  soulctl init ~/soul
  soulctl init . --base ~/models/Mistral-Large-Instruct-2407
  soulctl init ./tiny --base model.Q8_0.gguf --dtype bfloat16
  soulctl init ~/soul --store postgres+embedded
  soulctl init ~/soul --store postgresql://soul@db.example.org/soul
"""


def run(
    directory: Annotated[Path, typer.Argument(help="Where to create the home.")] = Path("."),
    base: Annotated[Optional[str], typer.Option(
        "--base", help="GGUF file, HF model directory or preset with local weights (default: the bundled SmolLM2).")] = None,
    dtype: Annotated[str, typer.Option(help="Precision of generation 0 when dequantizing a GGUF: float32, float16, bfloat16.")] = "float32",
    store: Annotated[Optional[str], typer.Option(
        "--store", help="Where the log lives: duckdb:data/soul.duckdb (default), postgres+embedded, postgresql://user@host/db.")] = None,
) -> None:
    from soulctl.init import create_home

    out = state.out
    with out.progress_bars() as progress:
        result = create_home(directory, base=base, dtype=dtype, store=store, progress=progress)
    out.record(result, human=lambda r: f"created soul home {r['home']} with {r['generation']} "
               f"(golden anchor) from {r['base']['name']}", id_key="home")
    out.hint("next: `soulctl budget` to check memory, `soulctl gen ls` to see the lineage")
