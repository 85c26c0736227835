"""Uncertainty over seeds: t-distribution intervals and bounds for the mean of a metric.

Each seed is one independent replication of the same scenario, so a metric's per-seed values
are i.i.d. draws and the mean's interval is the Student-t one: mean ± t · s/√n with n − 1
degrees of freedom. With one seed there is no interval: the bounds are NaN, never the mean.
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


def _finite(values: Iterable[float | None]) -> np.ndarray:
    a = np.array([np.nan if v is None else v for v in values], dtype=float)
    return a[np.isfinite(a)]


def mean_ci(values: Iterable[float | None], confidence: float = 0.95) -> MeanCI:
    """Mean and two-sided t interval of the mean; None/NaN values are left out."""
    a = _finite(values)
    n = int(a.size)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(a.mean())
    if n == 1:
        return MeanCI(1, mean, math.nan, math.nan, math.nan)
    std = float(a.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return MeanCI(n, mean, std, mean - half, mean + half)


def one_sided_bound(values: Iterable[float | None], confidence: float, upper: bool = True) -> float:
    """The one-sided t bound of the mean: the true mean is below it (``upper``) with probability
    ``confidence``. NaN with fewer than two values."""
    a = _finite(values)
    if a.size < 2:
        return math.nan
    half = float(stats.t.ppf(confidence, a.size - 1)) * float(a.std(ddof=1)) / math.sqrt(a.size)
    return float(a.mean()) + (half if upper else -half)


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Numeric summary metrics of a sweep table (not the identity, parameter or flag columns)."""
    skip = {"point", "seed", "key"}
    return [c for c in table.columns
            if c not in skip and not c.startswith("param.")
            and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]


def summarize_sweep(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Long table: one row per point × metric with n, mean, std, ci_low, ci_high over seeds."""
    params = [c for c in table.columns if c.startswith("param.")]
    cols = ["point", *params, "metric", "n", "mean", "std", "ci_low", "ci_high", "confidence"]
    metrics = metric_columns(table)
    if table.empty or not metrics:
        return pd.DataFrame(columns=cols)
    long = table[["point", *metrics]].melt(id_vars="point", var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    agg = (long.groupby(["point", "metric"], sort=False)["value"]
           .agg(n="count", mean="mean", std="std").reset_index())
    n = agg["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = stats.t.ppf((1 + confidence) / 2, np.where(n >= 2, n - 1, np.nan))
        half = t * agg["std"].to_numpy(dtype=float) / np.sqrt(n)
    agg["ci_low"] = agg["mean"] - half
    agg["ci_high"] = agg["mean"] + half
    agg["confidence"] = confidence
    ids = table[["point", *params]].drop_duplicates("point")
    return ids.merge(agg, on="point", how="right")[cols]
