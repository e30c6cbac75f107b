from __future__ import annotations

import pytest

from soulctl.budget.memory import KV_BYTES, Budget, ModelLoad, fit_context, parse_headroom
from soulctl.budget.modelfiles import PRESETS, QUANT_BPW, describe_model, find_preset, normalize_quant
from soulctl.errors import CheckFailed, InvalidInput, NotFound
from soulctl.units import parse_size

GiB = 1024**3


def load(name, quant=None, ctx=131072, kv="f16", slots=1, role="soul", flash=True):
    return ModelLoad(role, describe_model(name, quant), ctx, kv, slots, flash)


def budget(*models, ram=512 * GiB, apple=False, reserve=0):
    return Budget(list(models), ram_bytes=ram, os_reserve_bytes=reserve, apple_silicon=apple)


def test_mistral_large_fp16_weights_and_kv_match_reality():
    m = load("mistral-large-2407", "f16")
    assert abs(m.info.weights_bytes - 245.2e9) / 245.2e9 < 0.005
    assert m.kv_bytes_per_token == 360448
    assert m.kv_bytes == 360448 * 131072


@pytest.mark.parametrize("name", ["Llama-3.1-70B", "llama-3.1-70b", "hermes-4-70b"])
def test_llama_70b_kv_per_token(name):
    assert load(name, "f16").kv_bytes_per_token == 327680


@pytest.mark.parametrize("name,params", [
    ("smollm2-135m", 134_515_008),  # exact, as counted from the GGUF's tensors
    ("mistral-large-2407", 122.6e9),
    ("llama-3.1-70b", 70.55e9),
    ("llama-3.1-8b", 8.03e9),
    ("command-r-plus", 103.8e9),
    ("qwen2.5-72b", 72.7e9),
])
def test_preset_parameter_counts(name, params):
    counted = find_preset(name).arch.param_count()
    assert abs(counted - params) / params < 0.002


@pytest.mark.parametrize("quant,bpw", [("f32", 32), ("f16", 16), ("bf16", 16), ("q8_0", 8.5),
                                       ("q6_k", 6.5625), ("q4_0", 4.5), ("q4_1", 5.0),
                                       ("iq4_xs", 4.25), ("q2_k", 2.625), ("mlx-4bit", 4.5),
                                       ("mlx-8bit", 8.5), ("q4_k_m", 4.85), ("q5_k_m", 5.69)])
def test_quant_prices_weights_by_bits_per_weight(quant, bpw):
    m = describe_model("llama-3.1-8b", quant)
    assert m.weights_bytes == round(m.params * bpw / 8)


@pytest.mark.parametrize("kv,per_elem", [("f16", 2), ("bf16", 2), ("q8_0", 34 / 32), ("q4_0", 18 / 32)])
def test_kv_dtype_bytes(kv, per_elem):
    m = load("mistral-large-2407", "f16", kv=kv)
    assert m.kv_bytes_per_token == int(2 * 88 * 8 * 128 * per_elem)
    assert KV_BYTES[kv] == per_elem


def test_slots_multiply_kv():
    assert load("llama-3.1-8b", ctx=8192, slots=4).kv_bytes == 4 * load("llama-3.1-8b", ctx=8192).kv_bytes


def test_seed_stack_total_and_zone():
    soul = load("mistral-large-2407", "f16")
    major = load("hermes-4-70b", "q8_0", role="majordomo")
    b = budget(soul, major, apple=True, reserve=14 * GiB)
    components = {(c["name"], c["role"]): c["bytes"] for c in b.components()}
    assert components[("weights", "majordomo")] == round(major.info.params * 8.5 / 8)
    assert 380 * GiB < b.total_bytes < 450 * GiB
    assert b.fits and b.zone in ("green", "yellow")
    assert b.gpu_limit_bytes == int(0.75 * 512 * GiB)


def test_zones_and_fit():
    m = load("llama-3.1-70b", "q4_k_m", ctx=131072)
    assert budget(m, ram=1024 * GiB).zone == "green"
    tight = budget(m, ram=m.info.weights_bytes + m.kv_bytes + m.compute_bytes
                   + m.prompt_cache_bytes + GiB)
    assert tight.zone == "yellow" and tight.fits
    over = budget(m, ram=32 * GiB)
    assert over.zone == "red" and not over.fits


def test_gpu_share_overflow_is_yellow_with_sysctl_hint():
    m = load("mistral-large-2407", "f16")
    b = budget(m, ram=300 * GiB, apple=True)
    assert b.fits and b.gpu_bytes > b.gpu_limit_bytes
    assert b.zone == "yellow"
    assert any("iogpu.wired_limit_mb" in w for w in b.warnings())


def test_fit_finds_the_largest_multiple_of_256():
    m = load("llama-3.1-70b", "q8_0", ctx=4096)
    b = budget(m, ram=100 * GiB)
    target = 8 * GiB
    ctx = fit_context(b, target)
    assert ctx % 256 == 0 and ctx < 131072
    m.context = ctx
    assert b.headroom_bytes >= target
    m.context = ctx + 256
    assert b.headroom_bytes < target


def test_fit_is_capped_at_the_trained_context():
    b = budget(load("llama-3.1-8b", ctx=4096), ram=2048 * GiB)
    assert fit_context(b, 0) == 131072


def test_fit_refuses_when_nothing_fits():
    b = budget(load("mistral-large-2407", "f16", ctx=4096), ram=64 * GiB)
    with pytest.raises(CheckFailed):
        fit_context(b, 0)


def test_compute_buffer_without_flash_attention_grows_with_context():
    small = load("smollm2-135m", ctx=8192, flash=False).compute_bytes
    large = load("smollm2-135m", ctx=16384, flash=False).compute_bytes
    # llama.cpp reports 166.38 and 326.38 MiB for these (FIELD-NOTES); within 2%
    assert abs(small / 2**20 - 166.38) / 166.38 < 0.02
    assert abs(large / 2**20 - 326.38) / 326.38 < 0.02


def test_bad_names_are_clear_errors():
    with pytest.raises(NotFound, match="unknown model"):
        describe_model("no-such-model")
    with pytest.raises(InvalidInput, match="unknown precision"):
        normalize_quant("q3_zz")


@pytest.mark.parametrize("text,value", [("512GiB", 512 * GiB), ("24G", 24 * GiB), ("1.5TB", 1.5e12),
                                        ("8192", 8192), ("100 MiB", 100 * 2**20)])
def test_parse_size(text, value):
    assert parse_size(text) == value


def test_parse_size_rejects_garbage():
    with pytest.raises(InvalidInput):
        parse_size("lots")


def test_parse_headroom_percent():
    assert parse_headroom("10%", 1000) == 100
    assert parse_headroom("1KiB", 10**6) == 1024


def test_every_preset_has_its_numbers():
    for preset in PRESETS:
        a = preset.arch
        assert a.layers and a.kv_heads and a.head_dim and a.vocab and a.context
        assert preset.native in QUANT_BPW
