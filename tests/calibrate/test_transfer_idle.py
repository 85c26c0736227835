"""Issue 22: a transferred profile takes its idle level from the GPU catalog when the target GPU has
one (63 W x 700/400 = 110 W for an H100 disagreed with the catalog's 75 W)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from agentwatt.calibrate import transfer as T
from agentwatt.core.gpus import GPUS
from agentwatt.core.profile import PowerModel, load_profile


def _phase_profile(idle_w: float = 63.0):
    p = load_profile("llama-3.1-8b_a100-40gb")
    pm = PowerModel(available=True, source="nvml_energy", idle_w=idle_w, prefill_w=400.0, decode_base_w=250.0,
                    decode_log2_batch_w=10.0, max_w=400.0)
    return replace(p, power=pm)


def test_phase_model_idle_comes_from_the_catalog():
    out = T.transfer_profile(_phase_profile(63.0), "h100")
    assert out.power.idle_w == GPUS["h100"].idle_w == 75.0      # was 63 x 700/400 = 110.25 W
    assert out.power.decode_base_w == pytest.approx(250.0 * 700 / 400)   # busy levels still scale by TDP
    assert any("GPU catalog (75 W)" in n for n in out.provenance["notes"])


def test_target_without_a_catalog_idle_scales_by_tdp():
    out = T.transfer_profile(_phase_profile(63.0), "b200")
    assert GPUS["b200"].idle_w is None and out.power.idle_w == pytest.approx(63.0 * 1000 / 400)


def test_activity_model_parked_is_the_catalog_idle_and_keeps_the_context_watts():
    src = load_profile("llama-3.1-8b_a100-40gb").power
    out = T.transfer_profile(load_profile("llama-3.1-8b_a100-40gb"), "h100").power
    assert out.parked_w == 75.0
    assert out.idle_w == pytest.approx(75.0 + src.idle_w - src.parked_w)
    assert out.parked_w <= out.idle_w < src.idle_w * 700 / 400


def test_same_gpu_keeps_the_source_idle():
    src = load_profile("llama-3.1-8b_h100")
    out = T.transfer_profile(src, "h100", model="llama-3.1-70b", tp=4).power
    assert (out.idle_w, out.parked_w) == pytest.approx((src.power.idle_w, src.power.parked_w))
