"""Uncertainty over seeds: t-distribution intervals and bounds for a metric over its seeds.

Each seed is one independent replication of the same scenario, so a metric's per-seed values
are i.i.d. draws and the interval is the Student-t one with n − 1 degrees of freedom. It respects
the metric's range: when every value is positive (latencies, power, energy; the usual case) the
interval is taken on the logarithms and mapped back, exp(mean(log x) ± t · s_log/√n) (method
``log-t``: a log-normal model of the seeds, so a 2-seed interval of a latency never goes below zero);
otherwise it is mean ± t · s/√n (method ``t``). With one seed there is no interval: the bounds are
NaN, never the mean. Every interval carries ``n``, the number of seeds it rests on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from agentwatt.core.errors import InputError


def check_confidence(confidence: float, flag: str = "--confidence") -> float:
    if not (0.5 <= confidence < 1):
        raise InputError(f"{flag} {confidence:g}: expected a confidence level >= 0.5 and < 1 (e.g. 0.9)")
    return confidence


@dataclass(frozen=True)
class MeanCI:
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    method: str = "t"     # "log-t" when every value is positive (module docstring)


def _half_width(a: np.ndarray, q: float) -> float:
    return float(stats.t.ppf(q, a.size - 1)) * float(a.std(ddof=1)) / math.sqrt(a.size)


def _bounds(a: np.ndarray, q: float) -> tuple[float, float, str]:
    """(low, high, method) at quantile ``q`` of t for each edge (n >= 2)."""
    if bool((a > 0).all()):
        la = np.log(a)
        half = _half_width(la, q)
        m = float(la.mean())
        return math.exp(m - half), math.exp(m + half), "log-t"
    half = _half_width(a, q)
    m = float(a.mean())
    return m - half, m + half, "t"


def _finite(values: Iterable[float | None]) -> np.ndarray:
    a = np.array([np.nan if v is None else v for v in values], dtype=float)
    return a[np.isfinite(a)]


def mean_ci(values: Iterable[float | None], confidence: float = 0.95) -> MeanCI:
    """Mean and two-sided interval (module docstring: ``log-t`` for positive values, else ``t``);
    None/NaN values are left out."""
    a = _finite(values)
    n = int(a.size)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(a.mean())
    if n == 1:
        return MeanCI(1, mean, math.nan, math.nan, math.nan)
    lo, hi, method = _bounds(a, (1 + confidence) / 2)
    return MeanCI(n, mean, float(a.std(ddof=1)), lo, hi, method)


def one_sided_bound(values: Iterable[float | None], confidence: float, upper: bool = True) -> float:
    """The one-sided bound at ``confidence``: the metric's centre is below it (``upper``) with that
    probability; on the log scale for positive values (module docstring). NaN with fewer than two values."""
    a = _finite(values)
    if a.size < 2:
        return math.nan
    lo, hi, _ = _bounds(a, confidence)
    return hi if upper else lo


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Numeric summary metrics of a sweep table (not the identity, parameter or flag columns)."""
    skip = {"point", "seed", "key"}
    return [c for c in table.columns
            if c not in skip and not c.startswith("param.")
            and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]


def summarize_sweep(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Long table: one row per point × metric with n, mean, std, ci_low, ci_high over seeds."""
    params = [c for c in table.columns if c.startswith("param.")]
    cols = ["point", *params, "metric", "n", "mean", "std", "ci_low", "ci_high", "method", "confidence"]
    metrics = metric_columns(table)
    if table.empty or not metrics:
        return pd.DataFrame(columns=cols)
    long = table[["point", *metrics]].melt(id_vars="point", var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    rows = []
    for (point, metric), v in long.groupby(["point", "metric"], sort=False)["value"]:
        ci = mean_ci(v.tolist(), confidence)
        rows.append({"point": point, "metric": metric, "n": ci.n, "mean": ci.mean, "std": ci.std,
                     "ci_low": ci.ci_low, "ci_high": ci.ci_high, "method": ci.method if ci.n >= 2 else None})
    agg = pd.DataFrame(rows)
    agg["n"] = agg["n"].astype("int64")
    agg["confidence"] = confidence
    ids = table[["point", *params]].drop_duplicates("point")
    return ids.merge(agg, on="point", how="right")[cols]
