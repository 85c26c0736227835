"""Compare a measured power trace with a simulated one (the metrics of docs/power.md §8).

Both series are reduced to matched 1-second means over their common time span, then:
energy error ΔE %, ACF R² (does the simulated autocorrelation function follow the measured one,
lags 1..``max_lag_s``), the Kolmogorov–Smirnov distance of the two power distributions, and the
relative error of the P95 and P99 power. A series compared with itself gives 0 % and R² = 1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agentwatt.core.errors import InputError


def one_second_means(t_s: np.ndarray, w: np.ndarray, start: float, end: float) -> np.ndarray:
    """Means per 1 s bin of samples (t, w) in [start, end); empty bins take the previous value."""
    t_s = np.asarray(t_s, dtype=float)
    w = np.asarray(w, dtype=float)
    n = int(np.floor(end - start))
    if n < 2:
        raise InputError(f"power series overlap only {end - start:.2f} s: expected at least 2 s in common")
    idx = np.floor(t_s - start).astype(int)
    ok = (idx >= 0) & (idx < n)
    s = np.bincount(idx[ok], weights=w[ok], minlength=n)
    c = np.bincount(idx[ok], minlength=n)
    out = np.full(n, np.nan)
    out[c > 0] = s[c > 0] / c[c > 0]
    for i in range(n):  # forward-fill gaps (a meter that skipped a second)
        if np.isnan(out[i]):
            out[i] = out[i - 1] if i > 0 else np.nanmean(out)
    return out


def acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    x = np.asarray(x, dtype=float) - np.mean(x)
    var = float(np.dot(x, x))
    if var == 0.0:
        return np.zeros(max_lag)
    return np.array([np.dot(x[:-k], x[k:]) / var for k in range(1, max_lag + 1)])


def compare(measured_t: np.ndarray, measured_w: np.ndarray, sim_t: np.ndarray, sim_w: np.ndarray,
            max_lag_s: int = 60) -> dict:
    from scipy.stats import ks_2samp
    start = max(float(np.min(measured_t)), float(np.min(sim_t)))
    end = min(float(np.max(measured_t)), float(np.max(sim_t))) + 1e-9
    m = one_second_means(measured_t, measured_w, start, end)
    s = one_second_means(sim_t, sim_w, start, end)
    lag = max(1, min(max_lag_s, len(m) // 4))
    am, as_ = acf(m, lag), acf(s, lag)
    ss_tot = float(np.sum((am - am.mean()) ** 2))
    r2 = 1.0 - float(np.sum((am - as_) ** 2)) / ss_tot if ss_tot > 0 else (1.0 if np.allclose(am, as_) else 0.0)
    em, es = float(m.sum()), float(s.sum())
    p = {q: (float(np.percentile(m, q)), float(np.percentile(s, q))) for q in (95, 99)}
    return {
        "seconds_compared": len(m),
        "energy_measured_j": em, "energy_simulated_j": es,
        "energy_error_pct": 100.0 * (es - em) / em if em else None,
        "acf_r2": r2, "acf_lags_s": lag,
        "ks_distance": float(ks_2samp(m, s).statistic),
        "p95_error_pct": 100.0 * (p[95][1] - p[95][0]) / p[95][0] if p[95][0] else None,
        "p99_error_pct": 100.0 * (p[99][1] - p[99][0]) / p[99][0] if p[99][0] else None,
        "mean_measured_w": float(m.mean()), "mean_simulated_w": float(s.mean()),
    }


def read_power_series(path: str | Path, column: str | None = None,
                      dcgm_interval_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(time_s, watts) from a results folder (its power.parquet), our CSV or Parquet, or a meter's own
    output: nvidia-smi CSV, dcgmi dmon text, Zeus JSON (``validate/powerformats.py``; found by sniffing).

    Our format: time column ``time_s`` (seconds) or ``timestamp`` (parseable date-time); power column
    ``column`` if given, else the first of ``power_w``, ``gpu_power_w``, ``facility_power_w``.
    """
    from agentwatt.validate import powerformats as PF
    p = Path(path)
    if p.is_dir():
        p = p / "power.parquet"
    if not p.exists():
        raise InputError(f"{path}: not found: expected a power series ({PF.FORMATS}) or a results folder")
    kind = PF.sniff(p) if column is None else "native"
    if kind != "native":
        try:
            t, w = {"zeus": PF.read_zeus, "nvidia-smi": PF.read_nvidia_smi,
                    "dcgm": lambda q: PF.read_dcgm(q, dcgm_interval_s)}[kind](p)
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise InputError(f"{p}: cannot read as {kind} output ({str(e).splitlines()[0][:100]}): expected "
                             f"one of {PF.FORMATS}") from None
        if len(t) < 2:
            raise InputError(f"{p}: {len(t)} sample(s): expected a power series")
        return t, w
    try:
        df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text: expected a CSV with time_s and power_w columns") from None
    except Exception as e:  # pandas/pyarrow parse errors have many types
        raise InputError(f"{p}: cannot read ({type(e).__name__}: {str(e).splitlines()[0][:120]}): "
                         f"expected a CSV or Parquet table") from None
    if df.empty:
        raise InputError(f"{p}: no rows: expected a power series")
    if "time_s" in df:
        t = pd.to_numeric(df["time_s"], errors="coerce").to_numpy(dtype=float)
    elif "timestamp" in df:
        ts = pd.to_datetime(df["timestamp"], errors="coerce")
        t = (ts - ts.min()).dt.total_seconds().to_numpy(dtype=float)
    else:
        raise InputError(f"{p}: no time_s or timestamp column (columns: {', '.join(map(str, df.columns))}): expected "
                         f"one of {PF.FORMATS}")
    cols = [column] if column else [c for c in ("power_w", "gpu_power_w", "facility_power_w") if c in df]
    if not cols or cols[0] not in df:
        raise InputError(f"{p}: no power column {column or 'power_w'}: expected one of the columns "
                         f"{', '.join(map(str, df.columns))}")
    w = pd.to_numeric(df[cols[0]], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(t) | ~np.isfinite(w))
    if len(bad):
        raise InputError(f"{p}: row {int(bad[0]) + 2}: non-numeric or missing time/power: expected numbers")
    return t, w
