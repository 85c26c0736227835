"""PNG plots for sweeps and plans, drawn from their tables only (matplotlib Agg, written atomically).

File names are fixed here, never taken from parameter values.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agentwatt.sim.labels import is_count, label
from agentwatt.sim.plots import integer_ticks, pyplot, save_figure

SWEEP_FILES = {"metric_png": "sweep_metric.png", "pareto_png": "sweep_pareto.png",
               "power_load_png": "sweep_power_load.png"}


def _metric(summary: pd.DataFrame, name: str) -> pd.DataFrame:
    return summary[summary["metric"] == name]


def _params(summary: pd.DataFrame) -> list[str]:
    return [c for c in summary.columns if c.startswith("param.")]


def _yerr(df: pd.DataFrame) -> np.ndarray:
    lo = (df["mean"] - df["ci_low"]).to_numpy(dtype=float)
    hi = (df["ci_high"] - df["mean"]).to_numpy(dtype=float)
    return np.nan_to_num(np.vstack([lo, hi]), nan=0.0)


def _label(row: pd.Series, params: list[str]) -> str:
    return ", ".join(f"{label(p)}={row[p]}" for p in params)


def metric_vs_param(summary: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """``metric`` (mean, CI bars) against the first swept parameter; one line per combination of
    the other parameters."""
    params = _params(summary)
    df = _metric(summary, metric)
    if not params or df.empty:
        return None
    x, others = params[0], params[1:]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    groups = df.groupby(others, sort=True, dropna=False) if others else [((), df)]
    for key, g in groups:
        g = g.sort_values(x)
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{label(p)}={v}" for p, v in zip(others, key)) or None
        ax.errorbar(g[x].astype(str) if g[x].dtype == object else g[x], g["mean"], yerr=_yerr(g),
                    marker="o", capsize=3, label=name)
    conf = df["confidence"].iloc[0]
    _log_if_wide(ax, df["mean"])
    if is_count(x) and df[x].dtype != object:
        integer_ticks(ax.xaxis)
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(metric))
    ax.set_title(f"mean over seeds, {conf:.0%} interval (n = {int(df['n'].max())} seeds)")
    ax.grid(alpha=0.3)
    if others:
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def pareto_front(gpus: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Mask of points no other point beats on both cost (GPUs) and latency (lower is better)."""
    keep = np.ones(len(gpus), dtype=bool)
    for i in range(len(gpus)):
        better = (gpus <= gpus[i]) & (latency <= latency[i]) & ((gpus < gpus[i]) | (latency < latency[i]))
        keep[i] = not better.any() and np.isfinite(latency[i])
    return keep


LOAD_SUFFIXES = ("rate_per_s", "concurrency", "time_scale", "sessions")


def _load_params(params: list[str]) -> list[str]:
    """Swept parameters that set the offered load: points under different loads are not rivals."""
    return [p for p in params if p.rsplit(".", 1)[-1] in LOAD_SUFFIXES]


def _log_if_wide(ax, values) -> None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size and v.max() / v.min() > 20:
        ax.set_yscale("log")


def pareto_cost_latency(summary: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """Cost (GPUs) against ``metric`` per point; the Pareto front (no point with fewer or equal GPUs
    and a lower metric) as a step line, one front per offered load when a load was swept."""
    params = _params(summary)
    lat, cost = _metric(summary, metric), _metric(summary, "gpus")
    if lat.empty or cost.empty:
        return None
    df = lat.merge(cost[["point", "mean"]].rename(columns={"mean": "gpus"}), on="point")
    loads = _load_params(params)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.errorbar(df["gpus"], df["mean"], yerr=_yerr(df), fmt="o", color="0.6", capsize=3, label="sweep points")
    groups = df.groupby(loads, sort=True) if loads else [((), df)]
    for i, (key, g) in enumerate(groups):
        f = g[pareto_front(g["gpus"].to_numpy(float), g["mean"].to_numpy(float))].sort_values("gpus")
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{label(p)}={v}" for p, v in zip(loads, key))
        ax.step(f["gpus"], f["mean"], where="post", color=f"C{i % 10}", marker="o",
                label=f"Pareto front{': ' + name if name else ''}")
        if len(df) <= 24 and params and not loads:
            for _, row in f.iterrows():
                ax.annotate(_label(row, params), (row["gpus"], row["mean"]), fontsize=6, xytext=(4, 4),
                            textcoords="offset points")
    _log_if_wide(ax, df["mean"])
    integer_ticks(ax.xaxis)
    ax.set_xlabel(label("gpus"))
    ax.set_ylabel(label(metric))
    ax.set_title("cost against latency (mean over seeds, interval bars)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def power_vs_load(summary: pd.DataFrame, path: Path) -> Path | None:
    """Average and peak power (mean over seeds; facility power when the summaries have it, else
    GPU) against the realised session arrival rate, one line per fleet size when
    ``fleet.replicas`` was swept."""
    fac = _metric(summary, "facility_avg_power_w")
    base = "facility" if not fac.empty and fac["mean"].notna().all() else "GPU"
    avg = fac if base == "facility" else _metric(summary, "gpu_avg_power_w")
    peak_key = "facility_peak_power_w" if base == "facility" else "gpu_peak_power_w"
    arrived, end = _metric(summary, "sessions_arrived"), _metric(summary, "arrivals_end_s")
    if avg.empty or avg["mean"].isna().all() or arrived.empty or end.empty:
        return None
    df = avg.merge(_metric(summary, peak_key)[["point", "mean"]].rename(columns={"mean": "peak"}), on="point")
    load = arrived[["point", "mean"]].merge(end[["point", "mean"]], on="point", suffixes=("_n", "_t"))
    load["rate"] = load["mean_n"] / load["mean_t"]
    df = df.merge(load[["point", "rate"]], on="point")
    by = "param.fleet.replicas" if "param.fleet.replicas" in df.columns else None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (key, g) in enumerate(df.groupby(by, sort=True) if by else [(None, df)]):
        g = g.sort_values("rate")
        name = f"{key} replicas" if by else None
        ax.plot(g["rate"], g["mean"] / 1e3, marker="o", color=f"C{i % 10}", label=name and f"{name}, avg")
        ax.plot(g["rate"], g["peak"] / 1e3, ls="--", color=f"C{i % 10}", label=name and f"{name}, peak")
    ax.set_xlabel("session arrival rate (sessions/s, realised)")
    ax.set_ylabel("power (kW)")
    ax.set_title(f"{base} power vs load (solid: average, dashed: peak; mean over seeds)")
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    if by:
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def sweep_plots(summary: pd.DataFrame, out_dir: Path, metric: str) -> dict[str, Path]:
    drawn = {"metric_png": metric_vs_param(summary, metric, out_dir / SWEEP_FILES["metric_png"]),
             "pareto_png": pareto_cost_latency(summary, metric, out_dir / SWEEP_FILES["pareto_png"]),
             "power_load_png": power_vs_load(summary, out_dir / SWEEP_FILES["power_load_png"])}
    return {k: v for k, v in drawn.items() if v is not None}


def src_is_facility(result, t) -> bool:
    return bool(len(t)) and result.evaluated[t["size"].iloc[0]].power_source == "facility"


def plan_plot(table: pd.DataFrame, result, path: Path) -> Path:
    """Each SLO metric against the searched size (mean, per-seed values, band whose edges are the
    one-sided bounds), with the threshold and the answer; then peak and average power."""
    plt = pyplot()
    n = len(result.slos) + 1
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4))
    t = table.sort_values("size")
    band = 2 * result.confidence - 1
    for ax, slo in zip(axes, result.slos):
        m = slo.metric
        for size, a in result.evaluated.items():
            vals = next(c.values for c in a.checks if c.slo == slo)
            ax.plot([size] * len(vals), vals, "o", color="0.7", ms=3)
        ax.plot(t["size"], t[f"{m}.mean"], marker="o", color="C0", label="mean over seeds")
        ax.fill_between(t["size"], t[f"{m}.ci_low"], t[f"{m}.ci_high"], color="C0", alpha=0.2,
                        label=f"{band:.0%} CI (edges: one-sided {result.confidence:.0%} bounds)")
        ax.axhline(slo.threshold, color="C3", ls="--", label=f"SLO {slo.op} {slo.threshold:g}")
        ax.set_ylabel(label(m))
        ax.set_title(slo.text)
    pax = axes[-1]
    pax.plot(t["size"], t["budget_peak_power_w"] / 1e3, marker="o", color="C1", label="peak (max over seeds)")
    if t["gpu_peak_power_w"].notna().any() and src_is_facility(result, t):
        pax.plot(t["size"], t["gpu_peak_power_w"] / 1e3, marker=".", color="C1", ls=":", label="GPU peak")
    fac = t["facility_avg_power_w"].notna().all() and len(t)
    avg_col = "facility_avg_power_w" if fac else "gpu_avg_power_w"
    pax.plot(t["size"], t[avg_col] / 1e3, marker="o", color="C2",
             label=f"average ({'facility' if fac else 'GPU'}, mean over seeds)")
    if result.budget_w is not None and len(t) and result.budget_w <= 3 * np.nanmax(t["budget_peak_power_w"]):
        pax.axhline(result.budget_w / 1e3, color="C3", ls="--", label="power budget")
    src = result.evaluated[t["size"].iloc[0]].power_source if len(t) else None
    pax.set_ylabel("power (kW)")
    pax.set_title(f"power ({src or 'n/a'})" + (f", budget {result.budget_w / 1e6:g} MW" if result.budget_w else ""))
    for ax in axes:
        if result.answer is not None:
            ax.axvline(result.answer, color="k", lw=0.8, ls=":", label=f"answer {result.answer}")
        ax.set_xlabel(label(result.param))
        integer_ticks(ax.xaxis)
        if result.hi / max(result.lo, 1) >= 8:
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(pyplot().matplotlib.ticker.ScalarFormatter())
            ax.set_xticks(list(t["size"]))
            ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)
