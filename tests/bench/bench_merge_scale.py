"""How merge time and memory grow with the model: `soulctl merge` (a whole process) of one
q/k/v LoRA layer (r 32) into synthetic Llama-family models built here at three sizes — random
bf16 weights written as safetensors, the architecture of the user's Mistral Large at a smaller
width and depth — printing wall time, peak RSS and the largest tensor per size.

Merge streams tensor by tensor, so the expectation is: time linear in the bytes it reads and
writes (the touched q/k/v tensors are computed, the rest copied and hashed), peak memory the
process's fixed cost plus about one tensor, whatever the model's size. The last lines fit peak
RSS against the largest tensor and extrapolate time and memory to 123B (Mistral Large 2: 88
layers, hidden 12288, 245 GB in bf16).

With `--layers 1,10,100`, a second table: per size and merge method, the merge of a night on
a soul with that many accumulated layers. `ties` re-folds every layer (one merge of all N);
`fold` reads its parent's weights and the new layer only (its parent, N − 1 layers, is made
first by real folds of up to 10 layers each, not timed). A run whose estimate — linear in layers from the two before it — exceeds
`--max-minutes` or 80% of free RAM is skipped and says so.

Run: .venv/bin/python tests/bench/bench_merge_scale.py [--sizes 135M,1B,3B] [--dir DIR]
     [--layers 1,10,100 [--methods ties,fold] [--max-minutes 10]]
Needs ~3.5× the largest model's size in free disk (source, generation 0, generation 1).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# name → (hidden, layers, heads, kv heads, intermediate); vocab 49152, tied embeddings
SIZES = {
    "135M": (576, 30, 9, 3, 1536),
    "1B": (2048, 16, 32, 8, 8192),
    "3B": (3072, 28, 24, 8, 8192),
}
VOCAB = 49152
MISTRAL_LARGE = (12288, 88, 96, 8, 28672, 32768)  # hidden, layers, heads, kv, intermediate, vocab
RANK = 32

MEASURE = ("import resource, subprocess, sys, time\n"
           "t = time.perf_counter(); p = subprocess.run(sys.argv[1:], capture_output=True)\n"
           "wall = time.perf_counter() - t\n"
           "print(p.returncode, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
           "sys.stderr.write(p.stderr.decode()[-2000:] if p.returncode else '')\n")


def shapes(hidden: int, layers: int, heads: int, kv: int, inter: int, vocab: int = VOCAB) -> dict:
    head_dim = hidden // heads
    out = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,)}
    for i in range(layers):
        p = f"model.layers.{i}."
        out.update({
            p + "input_layernorm.weight": (hidden,), p + "post_attention_layernorm.weight": (hidden,),
            p + "self_attn.q_proj.weight": (heads * head_dim, hidden),
            p + "self_attn.k_proj.weight": (kv * head_dim, hidden),
            p + "self_attn.v_proj.weight": (kv * head_dim, hidden),
            p + "self_attn.o_proj.weight": (hidden, heads * head_dim),
            p + "mlp.gate_proj.weight": (inter, hidden), p + "mlp.up_proj.weight": (inter, hidden),
            p + "mlp.down_proj.weight": (hidden, inter),
        })
    return out


def write_safetensors(path: Path, tensors: dict[str, tuple], dtype: str, fill) -> None:
    """Stream a safetensors file tensor by tensor (`fill(n)` gives n elements' bytes)."""
    size = {"BF16": 2, "F32": 4}[dtype]
    header, offset = {}, 0
    for name, shape in tensors.items():
        n = int(np.prod(shape)) * size
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        for name, shape in tensors.items():
            fh.write(fill(int(np.prod(shape)), name))


def random_bf16(seed: int):
    """Random bf16 weights (std 0.02) cut from one pool at a different offset per tensor."""
    rng = np.random.default_rng(seed)
    pool = ((rng.standard_normal(1 << 24, dtype=np.float32) * 0.02).view(np.uint32) >> 16).astype(np.uint16)

    def fill(n: int, name: str) -> bytes:
        if name.endswith("norm.weight"):
            return np.full(n, 0x3F80, dtype=np.uint16).tobytes()  # 1.0
        start = int(rng.integers(0, len(pool)))
        reps = -(-(start + n) // len(pool))
        return np.tile(pool, reps)[start:start + n].tobytes() if reps > 1 else pool[start:start + n].tobytes()
    return fill


def build_model(directory: Path, spec: tuple, tokenizer: Path) -> int:
    hidden, layers, heads, kv, inter = spec
    directory.mkdir(parents=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
              "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
              "intermediate_size": inter, "vocab_size": VOCAB, "tie_word_embeddings": True,
              "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16",
              "hidden_act": "silu", "rope_theta": 100000.0}
    (directory / "config.json").write_text(json.dumps(config, indent=1))
    shutil.copyfile(tokenizer, directory / "tokenizer.json")
    tensors = shapes(*spec)
    write_safetensors(directory / "model.safetensors", tensors, "BF16", random_bf16(hidden))
    return sum(int(np.prod(s)) for s in tensors.values())


def build_adapter(staged: Path, spec: tuple, seed: int = 7) -> Path:
    hidden, layers, heads, kv, _ = spec
    head_dim = hidden // heads
    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(layers):
        for proj, rows in (("q_proj", heads * head_dim), ("k_proj", kv * head_dim), ("v_proj", kv * head_dim)):
            key = f"base_model.model.model.layers.{i}.self_attn.{proj}"
            tensors[f"{key}.lora_A.weight"] = (RANK, hidden)
            tensors[f"{key}.lora_B.weight"] = (rows, RANK)
    staged.mkdir(parents=True)

    def fill(n: int, name: str) -> bytes:
        return (rng.standard_normal(n, dtype=np.float32) * 0.01).tobytes()
    write_safetensors(staged / "adapter_model.safetensors", tensors, "F32", fill)
    (staged / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": RANK, "lora_alpha": 2 * RANK, "lora_dropout": 0.0,
        "target_modules": ["q_proj", "k_proj", "v_proj"], "bias": "none", "task_type": "CAUSAL_LM"}))
    return staged


def run(cmd: list[str]) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    code, wall, rss_kib = out.stdout.split()
    if code != "0":
        sys.exit(f"{' '.join(cmd[3:])} failed ({code}): {out.stderr}")
    return float(wall), int(rss_kib) / 1024


def soulctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "soulctl", *map(str, args)]


CHUNK = 10  # layers per fold while building a fold's parent


def set_method(home, method: str) -> None:
    path = home.root / "recipes" / "merge.yaml"
    text = path.read_text()
    path.write_text(re.sub(r"^method: *\w+", f"method: {method}", text, flags=re.M))


def free_ram_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def history(root: Path, name: str, tokenizer: Path, layers: list[int], methods: list[str], max_minutes: float) -> list:
    """Merge time and peak RSS with 1, 10, 100 … accumulated layers, per method, at one size."""
    from soulctl.generations.adapters import store_adapter
    from soulctl.home import Home

    spec = SIZES[name]
    work = root / f"history-{name}"
    build_model(work / "base", spec, tokenizer)
    subprocess.run(soulctl("init", work / "home", "--base", work / "base"), check=True, capture_output=True)
    shutil.rmtree(work / "base")
    home = Home(work / "home")
    ids = [store_adapter(home, build_adapter(work / f"staged-{i}", spec, seed=1000 + i),
                         {"trainer": "bench_merge_scale", "r": RANK}) for i in range(max(layers))]
    rows = []
    seen: list[tuple[int, float, float]] = []  # (layers, wall, rss) of each merge of many layers at once
    for method in methods:
        set_method(home, method)
        for n in layers:
            cost = n if method == "ties" else min(n - 1, CHUNK)  # layers one process merges at once
            below = sorted(p for p in seen if p[0] < cost)
            if len(below) >= 2 and cost > 1:
                (n1, w1, r1), (n2, w2, r2) = below[-2:]
                per_w, per_r = (w2 - w1) / max(1, n2 - n1), (r2 - r1) / max(1, n2 - n1)
                est_w, est_r = w2 + per_w * (cost - n2), r2 + per_r * (cost - n2)
                if est_w > max_minutes * 60 or est_r > 0.8 * free_ram_mib():
                    print(f"{name:>6} {method:>6} {n:>6}   skipped: one merge of {cost} layers, est. "
                          f"{est_w / 60:.0f} min and {est_r / 1024:.1f} GiB peak", flush=True)
                    rows.append((name, method, n, None, None))
                    continue
            subprocess.run(soulctl("--home", home.root, "gen", "use", "gen-0000", "--no-wait"), check=True,
                           capture_output=True)
            if method != "ties" and n > 1:  # the parent: n - 1 layers folded in, not timed, by
                for at in range(0, n - 1, CHUNK):  # real folds of up to CHUNK layers at a time
                    chunk = ids[at:min(at + CHUNK, n - 1)]
                    wall, rss = run(soulctl("--home", home.root, "merge", *chunk))
                    seen.append((len(chunk), wall, rss))
                    subprocess.run(soulctl("--home", home.root, "gen", "gc", "--keep", "1"), check=True,
                                   capture_output=True)
            wall, rss = run(soulctl("--home", home.root, "merge", *(ids[:n] if method == "ties" else ids[n - 1:n])))
            if method == "ties":
                seen.append((n, wall, rss))
            rows.append((name, method, n, wall, rss))
            print(f"{name:>6} {method:>6} {n:>6} {wall:>8.1f} {rss:>8.0f}Mi", flush=True)
            subprocess.run(soulctl("--home", home.root, "gen", "use", "gen-0000", "--no-wait"), check=True,
                           capture_output=True)
            subprocess.run(soulctl("--home", home.root, "gen", "gc", "--keep", "0"), check=True, capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="135M,1B,3B")
    ap.add_argument("--dir", type=Path, help="work here (default: a temporary directory)")
    ap.add_argument("--layers", help="accumulated layers to measure, e.g. 1,10,100 (the history table)")
    ap.add_argument("--methods", default="ties,fold")
    ap.add_argument("--max-minutes", type=float, default=10.0)
    args = ap.parse_args()
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    if args.layers:
        return main_history(args)
    root = Path(tempfile.mkdtemp(prefix="bench-merge-scale-", dir=args.dir))
    from soulctl.generations.adapters import store_adapter
    from soulctl.generations.base import bundled_gguf
    from soulctl.home import Home

    rows = []
    try:
        tok_home = root / "tok"
        gguf = bundled_gguf()
        subprocess.run(soulctl("init", tok_home, "--base", gguf), check=True, capture_output=True)
        tokenizer = tok_home / "generations" / "gen-0000" / "tokenizer.json"
        print(f"{'size':>6} {'params':>14} {'bytes':>10} {'touched':>9} {'largest':>9} "
              f"{'merge s':>8} {'peak RSS':>9} {'GB/s':>6}")
        for name in args.sizes.split(","):
            spec = SIZES[name]
            work = root / name
            params = build_model(work / "base", spec, tokenizer)
            subprocess.run(soulctl("init", work / "home", "--base", work / "base"), check=True, capture_output=True)
            shutil.rmtree(work / "base")
            home = Home(work / "home")
            build_adapter(work / "staged", spec)
            adapter = store_adapter(home, work / "staged", {"trainer": "bench_merge_scale", "r": RANK})
            wall, rss = run(soulctl("--home", home.root, "merge", adapter))
            all_shapes = shapes(*spec)
            touched = sum(int(np.prod(s)) for k, s in all_shapes.items() if "_proj" in k and "self_attn" in k
                          and "o_proj" not in k)
            largest = max(int(np.prod(s)) for s in all_shapes.values()) * 2
            size_bytes = params * 2
            rows.append((name, params, size_bytes, touched, largest, wall, rss))
            print(f"{name:>6} {params:>14,} {size_bytes / 2**30:>8.2f}Gi {touched / params:>8.1%} "
                  f"{largest / 2**20:>7.0f}Mi {wall:>8.1f} {rss:>7.0f}Mi {size_bytes / wall / 1e9:>6.2f}", flush=True)
            shutil.rmtree(work, ignore_errors=True)
        small, big = rows[0], rows[-1]
        time_per_byte = (big[5] - small[5]) / (big[2] - small[2])
        rss_growth = (big[6] - small[6]) / max(1, (big[2] - small[2]) / 2**30)
        per_tensor = (big[6] - small[6]) / max(1.0, (big[4] - small[4]) / 2**20)  # MiB per MiB of largest
        hidden, layers, heads, kv, inter, vocab = MISTRAL_LARGE
        ml = shapes(hidden, layers, heads, kv, inter, vocab)
        ml_params = sum(int(np.prod(s)) for s in ml.values()) + vocab * hidden  # untied lm_head
        ml_bytes = ml_params * 2
        ml_largest = max(int(np.prod(s)) for s in ml.values()) * 2
        print()
        print(f"time: {time_per_byte * 1e9:.2f} s per GB beyond the {small[0]} model "
              f"(fixed start-up {small[5]:.1f} s); memory: {rss_growth:+.0f} MiB per GiB of model, "
              f"peak {small[6]:.0f} → {big[6]:.0f} MiB from {small[2] / 2**30:.2f} to {big[2] / 2**30:.2f} GiB")
        projected = small[6] + per_tensor * (ml_largest - small[4]) / 2**20
        print(f"peak RSS follows the largest tensor, not the model: {per_tensor:.2f} MiB per MiB of it "
              f"({small[4] / 2**20:.0f} → {big[4] / 2**20:.0f} MiB)")
        print(f"123B (Mistral Large 2, {ml_params / 1e9:.0f}B params, {ml_bytes / 1e9:.0f} GB bf16), "
              f"extrapolated: ~{(small[5] + time_per_byte * (ml_bytes - small[2])) / 60:.0f} min at this "
              f"machine's disk speed; peak RSS ~{projected / 1024:.1f} GiB (its largest tensor is "
              f"{ml_largest / 2**20:.0f} MiB in bf16)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main_history(args) -> None:
    from soulctl.generations.base import bundled_gguf

    root = Path(tempfile.mkdtemp(prefix="bench-merge-history-", dir=args.dir))
    try:
        subprocess.run(soulctl("init", root / "tok", "--base", bundled_gguf()), check=True, capture_output=True)
        tokenizer = root / "tok" / "generations" / "gen-0000" / "tokenizer.json"
        print(f"{'size':>6} {'method':>6} {'layers':>6} {'merge s':>8} {'peak RSS':>10}", flush=True)
        rows = []
        for name in args.sizes.split(","):
            rows += history(root, name, tokenizer, [int(n) for n in args.layers.split(",")],
                            args.methods.split(","), args.max_minutes)
        print()
        for name in args.sizes.split(","):
            for method in args.methods.split(","):
                ran = [(n, w, r) for s, m, n, w, r in rows if s == name and m == method and w is not None]
                if len(ran) >= 2:
                    (n1, w1, r1), (n2, w2, r2) = ran[0], ran[-1]
                    print(f"{name} {method}: {n1} → {n2} layers: {w2 / w1:.2f}x time, {r2 / r1:.2f}x peak RSS")
        ties = [(s, n, w) for s, m, n, w, r in rows if m == "ties" and w is not None]
        fold = [(s, n, w) for s, m, n, w, r in rows if m == "fold" and w is not None]
        if ties and fold:
            big = args.sizes.split(",")[-1]
            per_layer = [w for s, n, w in ties if s == big]
            t_layers = [n for s, n, w in ties if s == big]
            if len(per_layer) >= 2:
                slope = (per_layer[-1] - per_layer[0]) / (t_layers[-1] - t_layers[0])
                print(f"ties at {big}: +{slope:.1f} s per accumulated layer; fold at {big}: "
                      f"{statistics.mean(w for s, n, w in fold if s == big):.1f} s whatever the layers")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
