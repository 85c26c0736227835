"""Fit the profile's latency and power models to sweep points (pure functions, numpy/scipy only).

Latency: non-negative least squares of

    time = overhead + a*prefill_tokens + b*prefill_attn + c*decode_seqs + d*decode_ctx

on the non-holdout points, each row divided by its measured time, so the fit minimises *relative*
error and a 5 ms decode step counts as much as a 500 ms prefill. Columns are scaled to [0, 1]
before solving (scaling by a positive number keeps the sign constraint) and scaled back after.

Power (when energy was measured): idle from the idle window; prefill watts = median over prefill
points (at least idle); decode watts = base + slope*log2(batch) by least squares constrained so that
decode power is never below idle at any batch the simulator can use (batch >= 1) and never falls with
batch: with ``b = base - idle``, ``(b, slope) >= 0`` is a non-negative least-squares problem on
``power - idle``. With decode power measured at one batch size only the slope is not identified:
it is 0 (flat decode power at the measured mean) rather than whatever split of the two collinear
columns a solver returns (which could put batch-1 decode at 0 W). max = TDP if known.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy.optimize import nnls

from agentwatt.core.profile import FitStats, LatencyModel, PowerModel
from agentwatt.core.errors import MeasurementUnavailable

FEATURES = ("prefill_tokens", "prefill_attn", "decode_seqs", "decode_ctx")
MIN_FIT_POINTS = 5

Point = dict[str, Any]


def design_matrix(points: Sequence[Point]) -> np.ndarray:
    """Rows ``[1, P, A, D, C]`` (float64)."""
    return np.array([[1.0, *(float(p[k]) for k in FEATURES)] for p in points], dtype=np.float64).reshape(-1, 5)


def nnls_relative(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative ``w`` minimising ``sum(((x @ w - y) / y)**2)``; all-zero columns get 0."""
    xr = x / y[:, None]
    scale = np.abs(xr).max(axis=0)
    used = scale > 0
    w = np.zeros(x.shape[1])
    sol, _ = nnls(xr[:, used] / scale[used], np.ones(len(y)), maxiter=50 * x.shape[1])
    w[used] = sol / scale[used]
    return w


def ape(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Absolute percentage errors as fractions (0.05 = 5 %)."""
    return np.abs(predicted - actual) / np.abs(actual)


def fit_stats(pred: np.ndarray, actual: np.ndarray, holdout: np.ndarray, note: str) -> FitStats:
    fit_err, hold_err = ape(pred[~holdout], actual[~holdout]), ape(pred[holdout], actual[holdout])
    return FitStats(n_points=int(fit_err.size), mape=float(fit_err.mean()), max_ape=float(fit_err.max()),
                    holdout_n_points=int(hold_err.size),
                    holdout_mape=float(hold_err.mean()) if hold_err.size else None,
                    holdout_max_ape=float(hold_err.max()) if hold_err.size else None, note=note)


def _holdout_mask(points: Sequence[Point]) -> np.ndarray:
    return np.array([bool(p.get("holdout", False)) for p in points], dtype=bool)


def fit_latency(points: Sequence[Point]) -> LatencyModel:
    """Fit on non-holdout points; report errors on both sets."""
    if not points:
        raise MeasurementUnavailable("no calibration points were measured: raise --budget-minutes")
    hold = _holdout_mask(points)
    fit_pts = [p for p, h in zip(points, hold) if not h]
    phases = {p["phase"] for p in fit_pts}
    if len(fit_pts) < MIN_FIT_POINTS or phases != {"prefill", "decode"}:
        raise MeasurementUnavailable(
            f"only {len(fit_pts)} fitting points ({', '.join(sorted(phases)) or 'no phase'}) were measured: "
            f"need at least {MIN_FIT_POINTS} covering prefill and decode; raise --budget-minutes")
    x, t = design_matrix(points), np.array([float(p["time_s"]) for p in points])
    w = nnls_relative(x[~hold], t[~hold])
    stats = fit_stats(x @ w, t, hold, note="non-negative least squares on relative error; "
                                           "holdout = every other interior grid point")
    return LatencyModel(overhead_s=float(w[0]), prefill_token_s=float(w[1]), prefill_attn_s=float(w[2]),
                        decode_seq_s=float(w[3]), decode_ctx_s=float(w[4]), fit=stats)


def unavailable_power(reason: str) -> PowerModel:
    return PowerModel(available=False, source="unavailable", reason=reason)


def fit_decode_power(batches: Sequence[int], watts: Sequence[float], idle_w: float) -> tuple[float, float]:
    """``(base, slope)`` of decode watts = base + slope*log2(batch), least squares under
    ``base >= idle_w`` and ``slope >= 0`` (so decode >= idle at every batch >= 1); slope 0 when
    the points hold one batch size only (module docstring)."""
    x = np.array([math.log2(max(int(b), 1)) for b in batches])
    y = np.asarray(watts, dtype=float) - idle_w
    if np.ptp(x) == 0:   # one batch size: no slope to fit
        return idle_w + max(float(y.mean()), 0.0), 0.0
    (b, slope), _ = nnls(np.column_stack([np.ones(len(x)), x]), y)
    return idle_w + float(b), float(slope)


def fit_power(points: Sequence[Point], idle_w: float | None, source: str, max_w: float | None = None) -> PowerModel:
    """Power model from points that carry ``power_w``; unavailable (with why) when they cannot make one."""
    metered = [p for p in points if p.get("power_w") is not None]
    hold = _holdout_mask(metered)
    fit_pre = [p for p, h in zip(metered, hold) if not h and p["phase"] == "prefill"]
    fit_dec = [p for p, h in zip(metered, hold) if not h and p["phase"] == "decode"]
    if idle_w is None:
        return unavailable_power(f"{source}: the idle window gave no energy reading")
    if not fit_pre or not fit_dec:
        return unavailable_power(f"{source}: no energy readings for "
                                 f"{'prefill' if not fit_pre else 'decode'} points")
    prefill_w = max(float(np.median([p["power_w"] for p in fit_pre])), float(idle_w))
    base, slope = fit_decode_power([p["batch"] for p in fit_dec], [float(p["power_w"]) for p in fit_dec],
                                   float(idle_w))
    model = PowerModel(available=True, source=source, idle_w=float(idle_w), prefill_w=prefill_w,
                       decode_base_w=float(base), decode_log2_batch_w=float(slope), max_w=max_w)
    pred = np.array([model.busy_w(1.0 if p["phase"] == "prefill" else 0.0, p["batch"]) for p in metered])
    actual = np.array([float(p["power_w"]) for p in metered])
    stats = fit_stats(pred, actual, hold, note="prefill: median W (>= idle); decode: least squares on log2(batch) "
                                              "with decode >= idle and slope >= 0 (slope 0 from one batch size)")
    return PowerModel(available=True, source=source, idle_w=float(idle_w), prefill_w=prefill_w,
                      decode_base_w=float(base), decode_log2_batch_w=float(slope), max_w=max_w, fit=stats)
