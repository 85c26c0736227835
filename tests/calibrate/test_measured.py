"""Profiles from published measurements: the development set within tolerance (held out by model),
the shipped files equal what the fit builds, derivation for any catalog model, the step model's shape,
and the activity power model (never below idle, caps that cost latency)."""
import sys
from pathlib import Path

import pytest

from agentwatt.calibrate import measured as M
from agentwatt.calibrate import published
from agentwatt.core import step
from agentwatt.core.derive import derive_latency
from agentwatt.core.models import get_model
from agentwatt.core.profile import load_profile

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import published as check  # noqa: E402  (benchmarks/published.py)


@pytest.fixture(scope="module")
def dev_set():
    return check.summary(check.cases())


def test_single_request_and_ttft_within_15_percent(dev_set):
    ok, n, mape = dev_set["single-request e2e"]
    assert n >= 100 and ok / n >= 0.95 and mape < 0.08
    ok, n, _ = dev_set["TTFT"]
    assert ok == n


def test_closed_batch_throughput_within_20_percent(dev_set):
    ok, n, mape = dev_set["closed-batch throughput"]
    assert n >= 300 and ok / n >= 0.9 and mape < 0.10


def test_other_engines_transfer_on_average(dev_set):
    """Other engines and versions (NeMo, NIM FP8, newer vLLM, H200) from the vLLM-0.6 fit: informative,
    but the mean must stay inside the closed-batch tolerance."""
    ok, n, mape = dev_set["other engines (transfer)"]
    assert n >= 15 and mape < 0.20


def test_energy_per_request_mean_error(dev_set):
    ok, n, mape = dev_set["energy per request"]
    assert n >= 30 and ok / n >= 0.7 and mape < 0.12   # the ±15 % goal is not met for every case (see the note)


@pytest.mark.parametrize("name,model,gpu,tp", published.BUNDLED)
def test_shipped_profiles_are_what_the_fit_builds(name, model, gpu, tp):
    built = published.build(name, model, gpu, tp).to_dict()
    shipped = load_profile(name).to_dict()
    for part in ("latency", "power"):
        nums = {k: v for k, v in built[part].items() if isinstance(v, float)}
        assert nums == pytest.approx({k: shipped[part][k] for k in nums}, rel=1e-9), part
    assert shipped["latency"]["fit"]["holdout_mape"] is not None
    assert shipped["latency"]["fit"]["n_points"] > 1


def test_decode_compute_overlaps_weight_read():
    """Large-batch decode costs far less than batch × the batch-1 step (the weights are read once)."""
    lat = load_profile("llama-3.1-8b_a100-40gb").latency
    b1 = lat.step_s(0, 0, 1, 1000)
    b64 = lat.step_s(0, 0, 64, 64 * 1000)
    assert b64 < 3 * b1
    # and a 2,048-token prefill runs near the measured compute efficiency (> 50 % of peak)
    flops = 2 * get_model("llama-3.1-8b").n_params_active * 2048
    assert flops / lat.step_s(2048, 2048 * 2048, 0, 0) > 0.5 * 312e12


def test_decode_block_closed_form_matches_steps():
    lat = load_profile("llama-3.1-70b_4xh100").latency
    blk = step.decode_block(lat, 8, 8 * 700)
    total = sum(lat.step_s(0, 0, 8, 8 * (700 + j)) for j in range(50))
    assert blk.end(50) == pytest.approx(total, rel=1e-12)


def test_derivation_covers_the_catalog_and_precision():
    bf16, _ = derive_latency(get_model("llama-2-7b"), "h100")
    fp8, _ = derive_latency(get_model("llama-2-7b"), "h100", weight_bytes=1, kv_bytes=1)
    assert fp8.weight_s == pytest.approx(bf16.weight_s / 2)
    assert fp8.decode_ctx_s < bf16.decode_ctx_s
    moe, how = derive_latency(get_model("mixtral-8x7b"), "h100", 2)
    assert moe.expert_weight_s > 0 and "measured on this GPU" in how
    # one token reads 2 of 8 experts; a big batch reads them all
    assert step.linear_s(moe, 1) < step.linear_s(moe, 256)
    _, how = derive_latency(get_model("qwen2.5-72b"), "b200", 4)
    assert "mean of the measured" in how


def test_mha_reads_four_times_the_kv_of_gqa():
    assert get_model("llama-2-7b").kv_bytes_per_token() == 4 * get_model("llama-3-8b").kv_bytes_per_token()


def test_transfer_routes_agree_within_band():
    """70B on 8×H100 derived from the H100 fit and from the A100 fit moved to H100's datasheet differ
    less than the sum of their bands; the per-step floor does not scale with bandwidth."""
    a100 = M.derive("llama-3.1-70b", "a100-40gb", 8)
    h100 = M.derive("llama-3.1-70b", "h100", 8)
    assert h100.overhead_s > 0.3 * a100.overhead_s      # no 5x swing of the floor between routes
    assert h100.step_s(0, 0, 1, 1000) < a100.step_s(0, 0, 1, 1000)


def test_power_never_below_idle_and_parked_below_idle():
    for name, *_ in published.BUNDLED:
        pm = load_profile(name).power
        assert pm.activity and pm.parked_w < pm.idle_w <= pm.max_w
        prof = load_profile(name)
        for work in [(0, 0, 1, 100), (0, 0, 256, 256 * 2000), (2048, 2048 ** 2, 0, 0)]:
            c = step.step_cost(prof, *work)
            assert pm.idle_w * prof.hardware.tp <= c.watts <= pm.max_w * prof.hardware.tp + 1e-9


def test_deep_cap_costs_decode_latency():
    prof = load_profile("llama-3.1-8b_a100-40gb")
    free = step.step_cost(prof, 0, 0, 32, 32 * 1000)
    mild = step.step_cost(prof, 0, 0, 32, 32 * 1000, cap_w_per_gpu=free.watts * 0.95)
    deep = step.step_cost(prof, 0, 0, 32, 32 * 1000, cap_w_per_gpu=prof.power.idle_w + 10)
    assert mild.seconds < 1.1 * free.seconds             # a mild cap barely touches decode
    assert deep.seconds > 1.5 * free.seconds             # a deep cap cannot be free
    assert deep.watts <= prof.power.idle_w + 10 + 1e-9


def test_cross_chip_band_and_two_routes_agree():
    """Leave-one-GPU-out: each measured GPU predicted from the other's efficiencies stays within 20 %
    on average; 70B on 8×H100 by its own fit and by the A100 fit moved to H100's datasheet agree
    within the sum of their bands on a grid of steps."""
    band = M.leave_one_gpu_out()
    assert all(v["mape"] < 0.20 for v in band.values())
    own = M.derive("llama-3.1-70b", "h100", 8)
    chip, eng = M.cross_chip("h100", "a100-40gb")
    moved = M.latency_model(get_model("llama-3.1-70b"), "h100", 8, chip, eng, M.allreduce_for("h100", 8))
    limit = band["h100"]["p90_ape"] + 0.15
    for work in [(0, 0, 1, 500), (0, 0, 32, 32 * 1500), (0, 0, 128, 128 * 1000), (2048, 2048 ** 2, 0, 0)]:
        assert abs(moved.step_s(*work) / own.step_s(*work) - 1) < limit


def test_derived_profiles_load_by_name():
    p = load_profile("mixtral-8x7b_2xh100")
    assert p.source == "transfer/estimate" and p.hardware.tp == 2 and p.latency.expert_weight_s > 0
    assert load_profile("qwen2.5-72b_4xb200_fp8").provenance["error_band"]["route"].startswith("cross-chip")
    with pytest.raises(Exception, match="expected a larger TP"):
        load_profile("llama-3.1-70b_h100")
