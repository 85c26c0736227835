"""Latency and power fits on synthetic points with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from agentwatt.calibrate.bench import SweepGrid, plan_points, step_features
from agentwatt.calibrate.fit import design_matrix, fit_latency, fit_power, nnls_relative, unavailable_power
from agentwatt.core.profile import LatencyModel
from agentwatt.core.errors import MeasurementUnavailable

TRUE = LatencyModel(overhead_s=4e-3, prefill_token_s=2e-5, prefill_attn_s=3e-9, decode_seq_s=1.5e-4,
                    decode_ctx_s=6e-8)
GRID = SweepGrid(prompt_lens=(16, 64, 256, 1024, 4096), prefill_batches=(1, 2, 4, 8),
                 decode_batches=(1, 4, 16, 64, 256), context_lens=(128, 512, 2048, 8192))


def synthetic_points(model: LatencyModel, noise: float = 0.0, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    pts = []
    for p in plan_points(GRID):
        f = step_features(p.phase, p.batch, p.length)
        t = model.step_s(f["prefill_tokens"], f["prefill_attn"], f["decode_seqs"], f["decode_ctx"])
        pts.append({"phase": p.phase, "batch": p.batch, **f, "holdout": p.holdout,
                    "time_s": t * (1 + noise * rng.standard_normal())})
    return pts


def test_fit_recovers_known_coefficients_exactly():
    fitted = fit_latency(synthetic_points(TRUE))
    np.testing.assert_allclose(fitted.coefficients, TRUE.coefficients, rtol=1e-7)
    assert fitted.fit.mape < 1e-9 and fitted.fit.holdout_mape < 1e-9
    assert fitted.fit.holdout_n_points > 0 and fitted.fit.n_points + fitted.fit.holdout_n_points == len(plan_points(GRID))


def test_fit_with_absent_term_gives_exact_zero_not_negative():
    no_attn = LatencyModel(**{**{k: getattr(TRUE, k) for k in ("overhead_s", "prefill_token_s", "decode_seq_s",
                                                                 "decode_ctx_s")}, "prefill_attn_s": 0.0})
    fitted = fit_latency(synthetic_points(no_attn, noise=0.02, seed=1))
    assert all(c >= 0 for c in fitted.coefficients)
    assert fitted.fit.mape < 0.05


def test_relative_weighting_keeps_small_steps_accurate():
    pts = synthetic_points(TRUE, noise=0.03, seed=2)
    fitted = fit_latency(pts)
    small = [p for p in pts if p["time_s"] < 0.01]
    assert small
    errs = [abs(fitted.step_s(p["prefill_tokens"], p["prefill_attn"], p["decode_seqs"], p["decode_ctx"])
                / p["time_s"] - 1) for p in small]
    assert max(errs) < 0.15


def test_nnls_relative_on_a_hand_example():
    x = np.array([[1.0, 0.0], [1.0, 10.0], [1.0, 100.0]])
    y = x @ np.array([2.0, 0.5])
    np.testing.assert_allclose(nnls_relative(x, y), [2.0, 0.5], rtol=1e-10)
    assert design_matrix([]).shape == (0, 5)


def test_too_few_points_or_one_phase_is_refused():
    pts = synthetic_points(TRUE)
    with pytest.raises(MeasurementUnavailable, match="raise --budget-minutes"):
        fit_latency([p for p in pts if p["phase"] == "decode"])
    with pytest.raises(MeasurementUnavailable, match="no calibration points"):
        fit_latency([])


def power_points(idle: float = 60.0, prefill: float = 650.0, base: float = 300.0, slope: float = 12.0) -> list[dict]:
    pts = synthetic_points(TRUE)
    for p in pts:
        p["power_w"] = prefill if p["phase"] == "prefill" else base + slope * math.log2(p["batch"])
        p["energy_j"] = p["power_w"] * p["time_s"]
    return pts


def test_power_fit_recovers_phase_watts_and_batch_slope():
    pm = fit_power(power_points(), idle_w=60.0, source="nvml_energy", max_w=700.0)
    assert pm.available and pm.source == "nvml_energy" and pm.max_w == 700.0
    assert pm.idle_w == 60.0 and pm.prefill_w == pytest.approx(650.0)
    assert pm.decode_base_w == pytest.approx(300.0) and pm.decode_log2_batch_w == pytest.approx(12.0)
    assert pm.fit.mape < 1e-9 and pm.fit.holdout_mape < 1e-9


def test_power_fit_unavailable_paths_carry_reasons():
    assert not fit_power(power_points(), idle_w=None, source="rapl").available
    only_decode = [p for p in power_points() if p["phase"] == "decode"]
    pm = fit_power(only_decode, idle_w=50.0, source="rapl")
    assert not pm.available and "prefill" in pm.reason
    none = unavailable_power("no meter")
    assert none.reason == "no meter" and none.idle_w is None and none.prefill_w is None
