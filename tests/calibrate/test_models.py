"""The torch decoder: cache paths agree with a full forward, parameter counts, real-weights I/O."""
from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest
import torch

from agentwatt.calibrate import models as M
from agentwatt.core.errors import InputError

# Published parameter counts of the real checkpoints these presets copy.
PUBLISHED_N_PARAMS = {"smollm2-135m": 134_515_008, "llama-3.2-1b": 1_235_814_400, "llama-3.1-8b": 8_030_261_248}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize("name", list(M.PRESETS))
def test_n_params_counted_from_module_match_shape_formula(name):
    model = M.build_model(name, device="meta")  # shapes only, no memory
    assert M.count_params(model) == M.expected_n_params(M.PRESETS[name])
    if name in PUBLISHED_N_PARAMS:
        assert M.count_params(model) == PUBLISHED_N_PARAMS[name]


def test_model_shape_carries_exact_count_and_dtype(tiny_model):
    shape = M.model_shape(tiny_model)
    assert shape.n_params == sum(p.numel() for p in tiny_model.parameters())
    assert shape.dtype_bytes == 4 and shape.name == "tiny"
    assert shape.kv_bytes_per_token == 2 * 4 * 2 * 64 * 4


def test_random_init_std_and_norms(tiny_model):
    w = tiny_model.model.layers[0].mlp.up_proj.weight
    assert abs(w.std().item() - M.INIT_STD) < 0.001
    assert torch.all(tiny_model.model.norm.weight == 1)


def test_prefill_then_decode_with_cache_equals_full_forward(tiny_model):
    g = torch.Generator().manual_seed(3)
    ids = M.random_token_ids(tiny_model, 2, 24, g)
    with torch.inference_mode():
        full = tiny_model(ids)
        cache = M.new_kv_cache(tiny_model, 2, 32)
        parts = [tiny_model(ids[:, :10], cache, 0),        # fresh causal prefill
                 tiny_model(ids[:, 10:16], cache, 10)]     # a chunk after a cached prefix (masked path)
        parts += [tiny_model(ids[:, i:i + 1], cache, i) for i in range(16, 24)]  # single-token decode
    incremental = torch.cat(parts, dim=1)
    assert incremental.shape == full.shape == (2, 24, 4096)
    torch.testing.assert_close(incremental, full, rtol=1e-4, atol=1e-4)


def test_prefill_and_decode_step_helpers_return_last_position(tiny_model):
    g = torch.Generator().manual_seed(4)
    ids = M.random_token_ids(tiny_model, 3, 12, g)
    cache = M.new_kv_cache(tiny_model, 3, 13)
    last = M.prefill(tiny_model, ids, cache)
    with torch.inference_mode():
        torch.testing.assert_close(last, tiny_model(ids)[:, -1], rtol=1e-4, atol=1e-4)
    nxt = last.argmax(-1, keepdim=True)
    out = M.decode_step(tiny_model, nxt, cache, 12)
    with torch.inference_mode():
        ref = tiny_model(torch.cat([ids, nxt], dim=1))[:, -1]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_decode_on_random_filled_cache_runs_at_any_context(tiny_model):
    g = torch.Generator().manual_seed(5)
    cache = M.new_kv_cache(tiny_model, 4, 301, random_fill=True, generator=g)
    out = M.decode_step(tiny_model, M.random_token_ids(tiny_model, 4, 1, g), cache, 300)
    assert out.shape == (4, 4096) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="capacity"):
        M.decode_step(tiny_model, M.random_token_ids(tiny_model, 4, 1, g), cache, 301)


def test_llama3_rope_scaling_keeps_high_and_stretches_low_frequencies():
    cfg = M.PRESETS["llama-3.1-8b"]
    plain = M.rope_inv_freq(replace(cfg, rope_scaling=None))
    scaled = M.rope_inv_freq(cfg)
    assert scaled[0] == plain[0]                                   # shortest wavelength untouched
    torch.testing.assert_close(scaled[-1], plain[-1] / cfg.rope_scaling.factor)
    assert torch.all(scaled <= plain + 1e-12)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(InputError, match="tiny, smollm2-135m"):
        M.get_preset("gpt-5")


def test_real_weights_roundtrip(tmp_path, tiny_model):
    folder = M.save_hf_folder(tiny_model, tmp_path / "tiny-hf")
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 4 and cfg["tie_word_embeddings"] is True
    other = M.build_model("tiny", seed=1)
    assert not torch.equal(other.model.embed_tokens.weight, tiny_model.model.embed_tokens.weight)
    M.load_real_weights(other, folder)
    for (name, a), (_, b) in zip(tiny_model.named_parameters(), other.named_parameters()):
        assert torch.equal(a, b), name
    assert M.config_from_hf(folder, name="tiny") == M.PRESETS["tiny"]


def test_hf_config_roundtrip_with_untied_head_and_rope_scaling(tmp_path):
    cfg = M.PRESETS["llama-3.1-8b"]
    (tmp_path / "config.json").write_text(json.dumps(M.hf_config_dict(cfg, torch.bfloat16)))
    assert M.config_from_hf(tmp_path, name=cfg.name) == cfg


def test_load_rejects_a_folder_of_another_shape(tmp_path, tiny_model):
    folder = M.save_hf_folder(tiny_model, tmp_path / "tiny-hf")
    other = M.build_model(replace(M.PRESETS["tiny"], intermediate_size=512))
    with pytest.raises(InputError, match="intermediate_size = 688: expected 512"):
        M.load_real_weights(other, folder)


def test_load_reports_missing_weights_and_files(tmp_path, tiny_model):
    with pytest.raises(InputError, match="config.json: not found"):
        M.load_real_weights(tiny_model, tmp_path)
    import safetensors.torch as st
    folder = M.save_hf_folder(tiny_model, tmp_path / "hf")
    tensors = st.load_file(str(folder / "model.safetensors"))
    del tensors["model.norm.weight"]
    st.save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(InputError, match="missing weights model.norm.weight"):
        M.load_real_weights(tiny_model, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(InputError, match="no model.safetensors"):
        M.load_real_weights(tiny_model, folder)


def test_missing_safetensors_names_what_to_install(monkeypatch, tmp_path, tiny_model):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(InputError, match="pip install safetensors"):
        M.save_hf_folder(tiny_model, tmp_path / "x")
    with pytest.raises(InputError, match="pip install safetensors"):
        M.load_real_weights(tiny_model, tmp_path)
