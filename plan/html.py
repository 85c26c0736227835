"""Interactive HTML reports of a sweep folder and a plan folder (``report.html``, self-contained,
offline; page parts from ``sim/html.py``), drawn from the files they wrote: ``sweep.json`` and
``sweep_summary.parquet``; ``plan.json``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agentwatt.core.errors import InputError
from agentwatt.sim.html import figure_html, layout, page, table
from agentwatt.sim.labels import is_count, label

SWEEP_METRICS = ("session_e2e_s.p99", "session_e2e_s.p95", "ttft_s.p99", "queue_s.p99",
                 "throughput.output_tokens_per_s_per_gpu", "gpu_energy_per_output_token_j",
                 "facility_energy_per_session_j", "facility_avg_power_w", "facility_peak_power_w",
                 "gpu_avg_power_w", "gpu_peak_power_w")


def _json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path.parent}: no {path.name}: expected a folder written by {what}") from None
    except ValueError as e:
        raise InputError(f"{path}: not JSON ({e}): expected {path.name} written by {what}") from None


def _int_ticks(fig, key: str, values) -> None:
    """Counts (replicas, GPUs) get integer ticks: at the values themselves when few, else whole steps."""
    if not is_count(key):
        return
    v = sorted({float(x) for x in values if x == x})
    if len(v) <= 16:
        fig.update_xaxes(tickmode="array", tickvals=v, ticktext=[f"{x:g}" for x in v])
    else:
        fig.update_xaxes(tickformat="d", tickmode="auto")


def curve_figure(summary: pd.DataFrame, metric: str, x: str):
    """``metric`` (mean over seeds, interval bars) against the parameter ``x``; one line per value of
    the other parameters."""
    import plotly.graph_objects as go
    df = summary[summary["metric"] == metric]
    others = [c for c in df.columns if c.startswith("param.") and c != x]
    fig = go.Figure()
    groups = df.groupby(others, sort=True, dropna=False) if others else [((), df)]
    for key, g in groups:
        g = g.sort_values(x)
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{label(p)}={v}" for p, v in zip(others, key)) or metric
        fig.add_trace(go.Scatter(
            x=g[x], y=g["mean"], mode="lines+markers", name=name,
            error_y={"type": "data", "symmetric": False, "array": (g["ci_high"] - g["mean"]).fillna(0),
                     "arrayminus": (g["mean"] - g["ci_low"]).fillna(0)},
            customdata=np.stack([g["n"], g["ci_low"], g["ci_high"]], axis=1),
            hovertemplate="%{y:.4g} [%{customdata[1]:.4g}, %{customdata[2]:.4g}], n=%{customdata[0]} seeds"))
    conf = df["confidence"].iloc[0] if len(df) else 0.95
    fig = layout(fig, x, metric, title=f"{label(metric)}: mean over seeds, {conf:.0%} interval", height=380)
    _int_ticks(fig, x, df[x])
    return fig


def pareto_figure(summary: pd.DataFrame, metric: str):
    """GPUs against ``metric`` for every point, the Pareto front (no point with fewer or equal GPUs
    and a lower metric) as a step line (``plan/plots.pareto_front``)."""
    import plotly.graph_objects as go
    from agentwatt.plan.plots import pareto_front
    lat = summary[summary["metric"] == metric]
    cost = summary[summary["metric"] == "gpus"][["point", "mean"]].rename(columns={"mean": "gpus"})
    df = lat.merge(cost, on="point")
    params = [c for c in df.columns if c.startswith("param.")]
    text = df[params].astype(str).agg(", ".join, axis=1) if params else None
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=df["gpus"], y=df["mean"], mode="markers", name="sweep points", text=text,
                             marker={"color": "#999"},
                             error_y={"type": "data", "symmetric": False, "array": (df["ci_high"] - df["mean"]).fillna(0),
                                      "arrayminus": (df["mean"] - df["ci_low"]).fillna(0)}))
    front = df[pareto_front(df["gpus"].to_numpy(float), df["mean"].to_numpy(float))].sort_values("gpus")
    fig.add_trace(go.Scatter(x=front["gpus"], y=front["mean"], mode="lines+markers", name="Pareto front",
                             line={"shape": "hv"}))
    fig = layout(fig, "gpus", metric, title=f"cost against {label(metric)}", height=380)
    _int_ticks(fig, "gpus", df["gpus"])
    return fig


def sweep_report(folder: str | Path) -> str:
    folder = Path(folder)
    manifest = _json(folder / "sweep.json", "agentwatt sweep")
    path = folder / "sweep_summary.parquet"
    if not path.exists():
        raise InputError(f"{folder}: no sweep_summary.parquet: expected a folder written by agentwatt sweep")
    summary = pd.read_parquet(path)
    params = [c for c in summary.columns if c.startswith("param.")]
    metrics = [m for m in SWEEP_METRICS if m in set(summary["metric"])]
    figs: list[str] = []
    if params:
        figs += [figure_html(curve_figure(summary, m, params[0]), f"curve_{i}") for i, m in enumerate(metrics)]
    if "gpus" in set(summary["metric"]) and metrics:
        figs.append(figure_html(pareto_figure(summary, metrics[0]), "pareto"))
    rows = []
    for m in metrics:
        for _, r in summary[summary["metric"] == m].iterrows():
            rows.append([label(m), ", ".join(f"{label(p)}={r[p]}" for p in params), r["mean"], r["ci_low"],
                         r["ci_high"], int(r["n"]), r.get("method")])
    grid = "; ".join(f"{label(k)} = {v}" for k, v in manifest.get("grid", {}).items())
    sections = [("Sweep", table(["", ""], [["scenario", manifest.get("scenario")], ["grid", grid],
                                            ["seeds per point", manifest.get("seeds")],
                                            ["runs", f"{manifest.get('runs_finished')}/{manifest.get('runs')}"],
                                            ["interval", f"{manifest.get('confidence', 0.95):.0%}; log-t when every "
                                                         f"value is positive, else t"]])),
                ("Metrics against the swept parameter", "".join(figs) or "<p>no swept parameter</p>"),
                ("Table (mean and interval over seeds)",
                 table(["metric", "point", "mean", "low", "high", "seeds", "interval"], rows))]
    return page("agentwatt sweep", sections, note="Drag on a plot to zoom, double-click to reset; hover for "
                                                   "values and the seeds behind each interval. Self-contained file.")


def plan_figures(doc: dict[str, Any]) -> list[str]:
    import plotly.graph_objects as go
    ev = pd.DataFrame(doc.get("evaluated") or [])
    if ev.empty:
        return []
    ev = ev.sort_values("size")
    out = []
    for i, slo in enumerate(doc.get("slos", [])):
        from agentwatt.plan.plan import parse_slo
        s = parse_slo(slo)
        m = s.metric
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=ev["size"], y=ev[f"{m}.ci_high"], mode="lines", line={"width": 0},
                                 showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=ev["size"], y=ev[f"{m}.ci_low"], mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor="rgba(31,119,180,0.2)", name=f"interval (edges: one-sided {doc['confidence']:.0%} bounds)"))
        fig.add_trace(go.Scatter(x=ev["size"], y=ev[f"{m}.mean"], mode="lines+markers", name="mean over seeds"))
        fig.add_trace(go.Scatter(x=[ev["size"].min(), ev["size"].max()], y=[s.threshold] * 2, mode="lines",
                                 name=f"SLO {s.op} {s.threshold:g}", line={"dash": "dash", "color": "#a33"}))
        fig = layout(fig, doc["param"], m, title=slo, height=380)
        _int_ticks(fig, doc["param"], ev["size"])
        out.append(figure_html(fig, f"plan_slo_{i}"))
    fig = go.Figure()
    for col, name in (("facility_peak_power_w", "facility peak"), ("gpu_peak_power_w", "GPU peak"),
                      ("facility_avg_power_w", "facility average"), ("gpu_avg_power_w", "GPU average")):
        if col in ev and ev[col].notna().any():
            fig.add_trace(go.Scatter(x=ev["size"], y=ev[col] / 1e3, mode="lines+markers", name=name))
    if doc.get("power_budget_w"):
        fig.add_trace(go.Scatter(x=[ev["size"].min(), ev["size"].max()], y=[doc["power_budget_w"] / 1e3] * 2,
                                 mode="lines", name="power budget", line={"dash": "dash", "color": "#a33"}))
    fig = layout(fig, doc["param"], y="power (kW)", title="power against fleet size", height=380)
    _int_ticks(fig, doc["param"], ev["size"])
    out.append(figure_html(fig, "plan_power"))
    return out


def plan_report(folder: str | Path) -> str:
    doc = _json(Path(folder) / "plan.json", "agentwatt plan")
    answer = doc.get("answer")
    head = [["SLOs", " and ".join(doc.get("slos", []))], ["confidence", doc.get("confidence")],
            ["searched", f"{doc.get('param')} in {doc.get('range')}"],
            ["power budget (W)", doc.get("power_budget_w")],
            ["answer", answer if answer is not None else f"none: {doc.get('reason')}"]]
    ev = doc.get("evaluated") or []
    cols = [c for c in (ev[0].keys() if ev else []) if not c.endswith(".ok")]
    sections = [("Plan", table(["", ""], head)), ("Against the fleet size", "".join(plan_figures(doc))),
                ("Evaluated sizes", table([label(c) if "." not in c else c for c in cols],
                                          [[r.get(c) for c in cols] for r in ev]))]
    return page("agentwatt plan", sections, note="Drag on a plot to zoom, double-click to reset. Self-contained file.")


def report_for(folder: str | Path) -> str:
    """The HTML page of a folder written by ``simulate``, ``sweep`` or ``plan`` (found by its files)."""
    from agentwatt.sim.html import run_report
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder: expected a folder written by agentwatt simulate, sweep or plan")
    if (folder / "plan.json").exists():
        return plan_report(folder)
    if (folder / "sweep.json").exists():
        return sweep_report(folder)
    if (folder / "summary.json").exists():
        return run_report(folder)
    raise InputError(f"{folder}: no summary.json, sweep.json or plan.json: expected a folder written by agentwatt "
                     f"simulate, sweep or plan")
