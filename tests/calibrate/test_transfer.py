"""GPU catalog and roofline transfer: sources present, identity, bandwidth/FLOP scaling, TP term, power, errors."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest

from agentwatt.calibrate import transfer as T
from agentwatt.core.gpus import GPUS, cpu_peaks_from, cpu_spec, get_gpu, gpu_for_device
from agentwatt.core.profile import (FitStats, Hardware, LatencyModel, PowerModel, Profile, load_profile,
                                         profile_from_dict)
from agentwatt.core.errors import InputError

REQUIRED = ("a100-40gb", "a100-80gb", "h100", "h200", "b200", "l40s")
NUMBERS = ("hbm_gbps", "bf16_dense_tflops", "mem_gib", "tdp_w", "idle_w", "interconnect_gbps")


def synthetic(device="NVIDIA A100-SXM4-40GB", tp=1, model="llama-3.1-8b", power=True, floor_s=0.0) -> Profile:
    """A GPU profile whose terms are exact rooflines at known efficiencies (so answers are known)."""
    m = T.model_shape_named(model, 2)
    r = T.rates_of(gpu_for_device(device))
    w = T.work_of(m, tp)
    comm = T.comm_s_per_token(w, r)
    lat = LatencyModel(overhead_s=w.weight_bytes / (0.8 * r.mem_bps) + floor_s,
                       prefill_token_s=w.prefill_flops_per_token / (0.5 * r.flops) + comm,
                       prefill_attn_s=w.attn_flops_per_unit / (0.25 * r.flops),
                       decode_seq_s=w.decode_flops_per_seq / (0.4 * r.flops) + comm,
                       decode_ctx_s=w.kv_bytes_per_token / (0.8 * r.mem_bps),
                       fit=FitStats(n_points=10, mape=0.02, max_ape=0.05, holdout_n_points=4, holdout_mape=0.03,
                                    holdout_max_ape=0.06))
    pw = (PowerModel(available=True, source="published", idle_w=60.0, prefill_w=400.0, decode_base_w=200.0,
                     decode_log2_batch_w=8.0, max_w=400.0) if power
          else PowerModel(available=False, source="unavailable", reason="no meter"))
    return Profile(name="synthetic", source="measured", model=m,
                   hardware=Hardware(device_name=device, kind="gpu", tp=tp, mem_gib_per_device=40.0, tdp_w_per_device=400.0),
                   latency=lat, power=pw, provenance={"preset": model})


# ------------------------------------------------------------------------------ catalog

def test_catalog_has_every_gpu_with_a_source_for_every_number():
    assert set(REQUIRED) <= set(GPUS)
    for g in GPUS.values():
        for f in NUMBERS:
            v = getattr(g, f)
            if v is None:   # no source: None, and a note says so
                assert any(n.startswith(f"{f}: None") for n in g.notes), (g.key, f)
            else:
                assert v > 0 and g.sources.get(f), (g.key, f)
    assert GPUS["h100"].idle_w == 75.0 and GPUS["a100-80gb"].idle_w == 63.0 and GPUS["h200"].idle_w is None
    assert GPUS["h100"].link_bytes_per_s == pytest.approx(450e9)   # half of 900 GB/s bidirectional


def test_gpu_lookup_by_name_alias_and_device_string():
    assert get_gpu("H100-SXM") is GPUS["h100"] and get_gpu("a100") is GPUS["a100-40gb"]
    with pytest.raises(InputError, match=r"--to 'tpu': unknown GPU: expected one of a100-40gb, a100-80gb, h100"):
        get_gpu("tpu")
    assert gpu_for_device("NVIDIA A100-SXM4-40GB") is GPUS["a100-40gb"]
    assert gpu_for_device("NVIDIA A100-SXM4-80GB") is GPUS["a100-80gb"]
    assert gpu_for_device("NVIDIA H100 80GB HBM3") is GPUS["h100"]
    assert gpu_for_device("NVIDIA H200") is GPUS["h200"] and gpu_for_device("AMD EPYC") is None


def test_local_cpu_row_comes_from_the_profile():
    peaks = cpu_peaks_from({"cpu_peaks": {"fp32_gflops": 20.0, "mem_gbps": 5.0, "threads": 1}}, "p.json")
    row = cpu_spec("AMD EPYC", 23.5, peaks)
    assert row.kind == "cpu" and row.name == "AMD EPYC" and row.flops == 20e9 and row.mem_bytes_per_s == 5e9
    assert row.tdp_w is None and "measured" in row.sources["hbm_gbps"]
    assert cpu_peaks_from({}, "p.json") is None
    with pytest.raises(InputError, match="p.json: provenance.cpu_peaks"):
        cpu_peaks_from({"cpu_peaks": {"fp32_gflops": "fast"}}, "p.json")


# ------------------------------------------------------------------------------ transfer math

def test_identity_transfer_keeps_every_coefficient():
    for prof in (synthetic(), synthetic(tp=8, model="llama-3.1-70b", floor_s=0.02),
                 load_profile("llama-3.1-8b_a100-40gb"), load_profile("llama-3.1-70b_8xa100-40gb")):
        out = T.transfer_profile(prof, "a100-40gb", tp=prof.hardware.tp)
        assert out.latency.coefficients == pytest.approx(prof.latency.coefficients, rel=1e-9)
        assert out.source == "transfer/estimate" and out.provenance["error_band"]["transfer_mape"] == 0.0


def test_efficiencies_are_recovered_from_a_synthetic_profile():
    e = T.efficiencies(synthetic(tp=8, model="llama-3.1-70b", floor_s=0.02).latency,
                       T.work_of(T.model_shape_named("llama-3.1-70b", 2), 8), T.rates_of(GPUS["a100-40gb"]))
    assert (e.prefill_token, e.prefill_attn, e.decode_seq, e.bandwidth) == pytest.approx((0.5, 0.25, 0.4, 0.8))
    assert e.floor_s == pytest.approx(0.02)


def test_doubling_bandwidth_halves_memory_bound_terms_and_doubling_flops_halves_compute():
    prof = synthetic()
    m = prof.model
    w = T.work_of(m, 1)
    r = T.rates_of(GPUS["a100-40gb"])
    fast_mem, _, parts = T.transfer_latency(prof.latency, w, r, w, replace(r, mem_bps=2 * r.mem_bps))
    assert fast_mem.decode_ctx_s == pytest.approx(prof.latency.decode_ctx_s / 2)
    assert fast_mem.overhead_s == pytest.approx(prof.latency.overhead_s / 2)   # all weight read (floor 0)
    assert fast_mem.prefill_token_s == pytest.approx(prof.latency.prefill_token_s)
    fast_alu, _, _ = T.transfer_latency(prof.latency, w, r, w, replace(r, flops=2 * r.flops))
    for k in ("prefill_token_s", "prefill_attn_s", "decode_seq_s"):
        assert getattr(fast_alu, k) == pytest.approx(getattr(prof.latency, k) / 2), k
    assert fast_alu.decode_ctx_s == pytest.approx(prof.latency.decode_ctx_s)
    floored = synthetic(floor_s=0.01)   # the floor does not scale with bandwidth
    out, _, parts = T.transfer_latency(floored.latency, w, r, w, replace(r, mem_bps=2 * r.mem_bps))
    assert parts["overhead_floor_s"] == pytest.approx(0.01)
    assert out.overhead_s == pytest.approx(0.01 + (floored.latency.overhead_s - 0.01) / 2)


def test_tensor_parallel_adds_the_all_reduce_term():
    prof = synthetic(model="llama-3.1-70b", tp=8)
    m = prof.model
    out = T.transfer_profile(prof, "h100", tp=4)
    comm = out.provenance["overhead_breakdown_s"]["comm_s_per_token"]
    # 2 all-reduces per layer of hidden x 2 bytes, ring factor 2(tp-1)/tp, over 450 GB/s each way:
    assert comm == pytest.approx(2 * 80 * 8192 * 2 * (2 * 3 / 4) / 450e9)
    assert comm > 0 and out.hardware.tp == 4
    e = out.provenance["efficiency"]
    w = T.work_of(m, 4)
    assert out.latency.prefill_token_s == pytest.approx(w.prefill_flops_per_token / (989e12 * e["prefill_token"]) + comm)
    assert T.comm_s_per_token(T.work_of(m, 1), T.rates_of(GPUS["h100"])) == 0.0
    assert "comm" in out.provenance["formulas"]


def test_model_change_scales_by_work():
    prof = synthetic()
    out = T.transfer_profile(prof, "a100-40gb", model="llama-3.2-1b")
    small = T.work_of(out.model, 1)
    big = T.work_of(prof.model, 1)
    assert out.model.name == "llama-3.2-1b" and out.model.dtype_bytes == 2
    assert out.latency.decode_ctx_s / prof.latency.decode_ctx_s == pytest.approx(
        small.kv_bytes_per_token / big.kv_bytes_per_token)
    assert out.latency.prefill_token_s / prof.latency.prefill_token_s == pytest.approx(
        small.prefill_flops_per_token / big.prefill_flops_per_token)


def test_layer_params_count_matches_the_published_configs():
    for name in ("llama-3.1-8b", "llama-3.1-70b"):
        m = T.model_shape_named(name, 2)
        assert T.layer_params(m) + 2 * T.head_params(m) == m.n_params   # untied embedding and head


def test_power_is_carried_as_fractions_of_tdp():
    out = T.transfer_profile(synthetic(), "h100")
    p = out.power
    assert p.available and p.source == "transfer" and p.max_w == 700.0
    assert (p.idle_w, p.prefill_w, p.decode_base_w, p.decode_log2_batch_w) == pytest.approx((75.0, 700.0, 350.0, 14.0))  # idle: the catalog's 75 W
    none = T.transfer_profile(synthetic(power=False), "h100").power
    assert not none.available and "no power model" in none.reason


def test_transferred_profile_is_valid_and_has_an_error_band():
    out = T.transfer_profile(load_profile("llama-3.1-8b_a100-40gb"), "h100", model="llama-3.1-70b", tp=8)
    again = profile_from_dict(out.to_dict(), "transferred")
    assert again.source == "transfer/estimate" and again.name == "llama-3.1-70b_8xh100"
    band = out.provenance["error_band"]
    assert len(band["checks"]) == 2 and 0 < band["transfer_mape"] < 1 and math.isfinite(band["combined_mape"])
    assert band["combined_mape"] >= band["transfer_mape"]
    assert out.latency.fit.mape == band["combined_mape"] and "error band" in out.latency.fit.note


def test_transfer_checks_compare_against_published_step_times():
    c1, c2 = T.transfer_checks()
    assert len(c1["points"]) == len(c2["points"]) == 8
    for c in (c1, c2):
        assert 0 < c["mape"] <= c["max_ape"] < 1
    assert c2["points"][0]["reference_ms"] == 29.7   # Splitwise H100 TP8 decode, batch 1


def test_cpu_profile_transfers_with_a_caveat():
    cpu = replace(synthetic(), name="tiny-cpu", model=T.model_shape_named("tiny", 4),
                  hardware=Hardware(device_name="Some CPU", kind="cpu", tp=1, mem_gib_per_device=16.0),
                  provenance={"preset": "tiny", "threads": 1,
                              "cpu_peaks": {"fp32_gflops": 20.0, "mem_gbps": 5.0, "threads": 1}})
    out = T.transfer_profile(cpu, "h100")
    assert out.model.name == "tiny" and out.model.dtype_bytes == 2
    assert any(n.startswith("CAVEAT: the source is a CPU profile") for n in out.provenance["notes"])
    same = T.transfer_profile(cpu, "local-cpu", model="smollm2-135m")
    assert same.hardware.kind == "cpu" and same.model.dtype_bytes == 4
    with pytest.raises(InputError, match="--to local-cpu: only for a CPU profile"):
        T.transfer_profile(synthetic(), "local-cpu")
    no_peaks = replace(cpu, provenance={"preset": "tiny"})
    with pytest.raises(InputError, match="provenance.cpu_peaks missing"):
        T.transfer_profile(no_peaks, "h100")


@pytest.mark.parametrize("kwargs, match", [
    ({"model": "gpt-5"}, "--model 'gpt-5': unknown model: expected one of llama-3.1-70b, llama-3.1-8b, llama-3.2-1b"),
    ({"model": "llama-3.1-70b"}, r"weights need 131.4 GiB per device, more than 90% of its 80 GiB"),
    ({"tp": 3}, "--tp 3: expected a divisor of llama-3.1-8b's 32 attention heads"),
])
def test_bad_targets_are_one_line_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match) as e:
        T.transfer_profile(synthetic(), "h100", **kwargs)
    assert "\n" not in str(e.value)


def test_source_gpu_must_be_in_the_catalog():
    t4 = replace(synthetic(), hardware=replace(synthetic().hardware, device_name="NVIDIA T4"))
    with pytest.raises(InputError, match="p.json: hardware.device_name = 'NVIDIA T4': not in the GPU catalog"):
        T.transfer_profile(t4, "h100", where="p.json")
