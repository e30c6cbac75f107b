"""dream on mlx-lm (mlx[cpu] here, Apple silicon's GPU on the user's Mac): the loss falls, the
adapter is in PEFT format, it merges, and the generation made from it verifies."""

from __future__ import annotations

import json

from conftest import copy_home, soulctl

# Short on purpose: mlx[cpu] on Linux runs ~8 tokens/s forward, so each token counts (the
# system message replaces SmolLM2's longer default one).
BUFFER = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What do you keep?"},
     {"role": "assistant", "content": "A notebook of rivers."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What do herons teach?"},
     {"role": "assistant", "content": "Patience."}],
]


def test_mlx_dream_merges_into_a_generation_that_verifies(gen0_home, tmp_path):
    home = tmp_path / "home"
    copy_home(gen0_home, home)
    buffer = tmp_path / "herons.jsonl"
    buffer.write_text("".join(json.dumps({"messages": m}) + "\n" for m in BUFFER))
    dreamt = soulctl("--home", home, "--json", "dream", str(buffer), "--device", "mlx", "--epochs", "1",
                     "--learning-rate", "1e-3", timeout=1200)
    assert dreamt.code == 0, dreamt
    d = dreamt.json()
    assert d["device"] == "mlx" and d["trainer"] == "mlx-lm"
    assert d["loss_after"] < d["loss_before"], d
    adapter = home / "data" / "adapters" / d["id"]
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", 32, 64)
    assert sorted(config["target_modules"]) == ["k_proj", "q_proj", "v_proj"]
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), framework="numpy") as st:
        keys = list(st.keys())
        a = st.get_tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
        b = st.get_tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
    assert len(keys) == 30 * 3 * 2 and a.shape == (32, 576) and b.shape == (576, 32)

    merged = soulctl("--home", home, "--json", "merge", d["id"])
    assert merged.code == 0, merged
    assert merged.json()["id"] == "gen-0001" and merged.json()["drift"]["overall"] > 0
    assert soulctl("--home", home, "gen", "verify").code == 0
    report = soulctl("--home", home, "--json", "anchor", "drift").json()
    assert report["id"] == "gen-0001" and report["probe_loss_delta"] <= 0.25
