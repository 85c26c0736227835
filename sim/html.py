"""Interactive HTML reports: one self-contained file per run (``report.html``) that opens offline.

Drawn with Plotly (its JavaScript embedded once in the page, no CDN) from the files a run wrote
(``summary.json``, ``calls.parquet``, ``sessions.parquet``, ``power.parquet``,
``power_levels.parquet``), never from simulator internals. Every figure zooms (drag a box,
double-click to reset) and shows values on hover. ``page`` and ``figure_html`` are shared with the
sweep and plan reports (``plan/html.py``). plotly is imported lazily.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from agentwatt.core.errors import InputError
from agentwatt.core.io import atomic_write_text
from agentwatt.sim.labels import label, stat_words

REPORT_FILE = "report.html"
_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.9em}.warn{color:#a33}"""


# ------------------------------------------------------------------------------ page parts (shared)

def num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    if isinstance(v, (bool, str)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return f"{float(v):.{digits}g}"


def table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """An HTML table; numbers right-aligned and formatted by ``num``."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for v in row:
            is_num = isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
            cells.append(f'<td class="n">{num(v)}</td>' if is_num or v is None else f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    head = f"<tr>{head}</tr>" if any(str(h) for h in headers) else ""
    return f'<div style="overflow-x:auto"><table>{head}{"".join(body)}</table></div>'


def figure_html(fig, div_id: str) -> str:
    """A Plotly figure as a div (the JavaScript is in the page head, once)."""
    import plotly.io as pio
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def page(title: str, sections: list[tuple[str, str]], note: str = "") -> str:
    """The whole page: ``sections`` are (heading, inner HTML); plotly.js embedded (offline) when a
    section holds a Plotly figure."""
    body = "".join(f"<h2>{html.escape(h)}</h2>{inner}" for h, inner in sections)
    js = ""
    if "Plotly.newPlot" in body:
        from plotly.offline import get_plotlyjs
        js = f"<script type=\"text/javascript\">{get_plotlyjs()}</script>"
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style>{js}</head><body>"
            f"<h1>{html.escape(title)}</h1><p class=\"note\">{note}</p>{body}</body></html>")


def layout(fig, xkey: str | None = None, ykey: str | None = None, *, x: str | None = None, y: str | None = None,
           title: str = "", height: int = 420):
    fig.update_layout(title=title, height=height, template="plotly_white", hovermode="x unified",
                      legend={"orientation": "h", "y": -0.2}, margin={"l": 70, "r": 20, "t": 50, "b": 60})
    fig.update_xaxes(title=x if x is not None else (label(xkey) if xkey else None))
    fig.update_yaxes(title=y if y is not None else (label(ykey) if ykey else None))
    return fig


# ------------------------------------------------------------------------------ a run

def _read(folder: Path, name: str) -> pd.DataFrame | None:
    p = folder / name
    return pd.read_parquet(p) if p.exists() else None


def load_run(folder: str | Path) -> dict[str, Any]:
    """The files of a run folder (``simulate --out``); a one-line error if it is not one."""
    folder = Path(folder)
    sp = folder / "summary.json"
    if not sp.exists():
        raise InputError(f"{folder}: no summary.json: expected a folder written by agentwatt simulate")
    try:
        summary = json.loads(sp.read_text(encoding="utf-8"))
    except ValueError as e:
        raise InputError(f"{sp}: not JSON ({e}): expected summary.json written by agentwatt simulate") from None
    return {"summary": summary, "calls": _read(folder, "calls.parquet"), "sessions": _read(folder, "sessions.parquet"),
            "power": _read(folder, "power.parquet"), "levels": _read(folder, "power_levels.parquet")}


MAX_POINTS = 5000     # per series in the page: longer series are shown as means of consecutive bins
MAX_RACKS = 12        # racks drawn one by one (the highest peaks) beside every row


def thin(df: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Means of ``k`` consecutive rows (k = ceil(len / max_points)); the frame itself when short."""
    k = -(-len(df) // max_points)
    if k <= 1:
        return df
    return df.groupby(np.arange(len(df)) // k, sort=True).mean(numeric_only=True).reset_index(drop=True)


def power_figure(power: pd.DataFrame, s: dict[str, Any]):
    """GPU, IT and facility power (kW) with the nameplate, the P95 and the drain shaded."""
    import plotly.graph_objects as go
    fig = go.Figure()
    t = power["time_s"]
    for col, name in (("gpu_power_w", "GPUs"), ("it_power_w", "IT (GPUs + hosts + network)"),
                      ("facility_power_w", "facility (IT × PUE)")):
        if col in power:
            fig.add_trace(go.Scatter(x=t, y=power[col] / 1e3, name=name, mode="lines", line={"width": 1.2},
                                     hovertemplate="%{y:.4g} kW"))
    pv, fp = s.get("provisioning") or {}, s.get("facility_power") or {}
    for value, text, dash in ((pv.get("nameplate_facility_w"), "facility nameplate (TDP)", "dash"),
                              (pv.get("nameplate_it_w"), "IT nameplate", "dot"),
                              (fp.get("p95_w"), "facility P95", "dashdot")):
        if value:
            fig.add_hline(y=value / 1e3, line_dash=dash, line_color="#a33" if "nameplate" in text else "#555",
                          annotation_text=f"{text} {value / 1e3:.3g} kW", annotation_position="top left")
    _shade_drain(fig, s)
    fig.update_xaxes(rangeslider={"visible": True})
    return layout(fig, "sim_time_s", x="simulated time (s)", y="power (kW)",
                  title="Fleet power: drag to zoom, double-click to reset", height=480)


def _shade_drain(fig, s: dict[str, Any]) -> None:
    a, b = s.get("arrivals_end_s"), s.get("sim_time_s")
    if a is not None and b is not None and b > a:
        fig.add_vrect(x0=a, x1=b, fillcolor="#888", opacity=0.15, line_width=0,
                      annotation_text="drain (no arrivals)", annotation_position="top right")


def levels_figure(levels: pd.DataFrame, s: dict[str, Any]):
    """IT power per rack and per row (kW), with the rack nameplate and the row power limit."""
    import plotly.graph_objects as go
    fig = go.Figure()
    peaks = levels[levels["level"] == "rack"].groupby("index")["it_power_w"].max()
    shown = set(peaks.nlargest(MAX_RACKS).index)
    for (lvl, idx), g in levels.groupby(["level", "index"], sort=True):
        if lvl == "rack" and idx not in shown:
            continue
        g = thin(g)
        fig.add_trace(go.Scatter(x=g["time_s"], y=g["it_power_w"] / 1e3, name=f"{lvl} {idx}", mode="lines",
                                 line={"width": 1, "dash": "solid" if lvl == "rack" else "dot"}))
    pv = s.get("provisioning") or {}
    t = levels["time_s"]
    for value, text, dash in ((pv.get("rack_nameplate_w"), "rack nameplate", "dash"),
                              (pv.get("row_power_limit_w"), "row power limit", "dot")):
        if value:
            fig.add_trace(go.Scatter(x=[t.min(), t.max()], y=[value / 1e3] * 2, mode="lines", name=f"{text} "
                                     f"{value / 1e3:.3g} kW", line={"dash": dash, "color": "#a33"}))
    _shade_drain(fig, s)
    fig.update_yaxes(type="log")
    more = f" ({len(shown)} of {len(peaks)} racks: the highest peaks)" if len(peaks) > len(shown) else ""
    return layout(fig, x="simulated time (s)", y="IT power (kW, log scale)",
                  title=f"IT power per rack and per row, with the rack nameplate and the row limit{more}")


def ccdf_figure(df: pd.DataFrame, col: str, key: str, s: dict[str, Any], slo: float | None = None):
    """P(latency > x) per agent class, log-log, with the overall p50 and p99 marked."""
    import plotly.graph_objects as go
    fig = go.Figure()
    from agentwatt.sim.plots import ccdf_points
    for agent, g in df.groupby("agent", sort=True):
        v = g[col].to_numpy(dtype=float)
        x, p = ccdf_points(v)                      # P(X >= x): never 0, so log y shows the slowest one
        if len(x):
            n = int((np.isfinite(v) & (v > 0)).sum())
            fig.add_trace(go.Scatter(x=x, y=p, name=f"{agent} (n={n})", mode="lines", line={"shape": "hv"}))
    d = s.get(key) or {}
    lo = 1.0 / max(1, int(df[col].notna().sum()))
    marks = [(d.get("p50"), "p50", "dot", "#555"), (d.get("p99"), "p99", "dash", "#555"), (slo, "SLO", "solid", "#a33")]
    for x, name, dash, color in marks:   # vertical markers as traces (shape labels misplace on log axes)
        if x:
            fig.add_trace(go.Scatter(x=[x, x], y=[lo, 1.0], mode="lines", name=f"{name} {x:.3g} s (all classes)",
                                     line={"dash": dash, "color": color, "width": 1.5}))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log", exponentformat="power")
    return layout(fig, x=label(key), y="share of calls/sessions slower (CCDF)", title=label(key).split(" (")[0],
                  height=380)


def timeline_figure(power: pd.DataFrame, s: dict[str, Any]):
    """KV cache in use (% of the fleet's blocks), sequences per step and busy GPUs over time."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    t = power["time_s"]
    cap = (s.get("kv_blocks_per_replica") or 0) * (s.get("replicas") or 0)
    if "kv_blocks_in_use" in power and cap:
        fig.add_trace(go.Scatter(x=t, y=100 * power["kv_blocks_in_use"] / cap, name="KV cache in use (%)",
                                 mode="lines"), row=1, col=1)
    if "sequences_in_batch" in power:
        fig.add_trace(go.Scatter(x=t, y=power["sequences_in_batch"], name="sequences in the running steps (sum "
                                 "over replicas)", mode="lines"), row=2, col=1)
    fig.add_trace(go.Scatter(x=t, y=power["busy_gpus"], name="busy GPUs", mode="lines"), row=3, col=1)
    fig.update_yaxes(title_text="KV in use (%)", row=1, col=1)
    fig.update_yaxes(title_text="sequences", row=2, col=1)
    fig.update_yaxes(title_text="busy GPUs", row=3, col=1)
    fig.update_xaxes(title_text="simulated time (s)", row=3, col=1)
    _shade_drain(fig, s)
    fig.update_layout(title="KV cache and batch over time (bin means)", height=620, template="plotly_white",
                      hovermode="x unified", legend={"orientation": "h", "y": -0.12})
    return fig


def _latency_table(s: dict[str, Any]) -> str:
    from agentwatt.sim.report import pct_key
    stats = ["mean", *(pct_key(p) for p in s.get("percentiles", (50, 90, 99))), "n"]
    rows = [[label(k), *((s.get(k) or {}).get(st) for st in stats)]
            for k in ("queue_s", "ttft_s", "tpot_s", "call_e2e_s", "session_e2e_s")]
    return table(["metric", *(stat_words(st) for st in stats)], rows)


def _flat_get(s: dict[str, Any], key: str) -> Any:
    v: Any = s
    for part in key.split("."):
        if not isinstance(v, dict):
            return None
        v = v.get(part)
    return v


RUN_KEYS = ("throughput.sessions_per_s", "throughput.calls_per_s", "throughput.output_tokens_per_s",
            "throughput.output_tokens_per_s_per_gpu", "gpu_utilization", "prefix_cache_hit_rate",
            "kv_peak_utilization", "preemptions", "gpu_energy_j", "gpu_avg_power_w", "gpu_peak_power_w",
            "facility_avg_power_w", "facility_peak_power_w", "facility_power.p95_w", "gpu_energy_per_session_j",
            "facility_energy_per_session_j", "gpu_energy_per_token_j", "gpu_energy_per_output_token_j",
            "facility_energy_per_output_token_j")


def _overview(s: dict[str, Any]) -> str:
    prof = s.get("profile") or {}
    w = s.get("metrics_window") or {}
    rows = [["scenario", f"{s.get('scenario')} ({s.get('scenario_source')})"], ["seed", s.get("seed")],
            ["profile", f"{prof.get('name')}: {prof.get('model')} on {prof.get('device')} ×{prof.get('tp')}"],
            ["fleet", f"{s.get('replicas')} replica(s), {s.get('gpus')} GPU(s)"],
            ["simulated", f"{num(s.get('sim_time_s'))} s (arrivals for {num(s.get('arrivals_end_s'))} s, then the drain)"],
            ["sessions", f"{s.get('sessions_completed')}/{s.get('sessions_arrived')} completed, "
                         f"{s.get('sessions_in_flight')} in flight, {s.get('sessions_dropped')} dropped"],
            ["metrics window", f"{num(w.get('start_s'))}-{num(w.get('end_s'))} s: {w.get('rule')}"]]
    warn = "".join(f'<p class="warn">warning: {html.escape(x)}</p>' for x in s.get("warnings", []))
    return table(["", ""], rows) + warn


def _figures(run: dict[str, Any]) -> list[tuple[str, str]]:
    s, calls, sessions, power, levels = (run[k] for k in ("summary", "calls", "sessions", "power", "levels"))
    out: list[tuple[str, str]] = []
    if power is not None:
        t = power["time_s"].to_numpy(dtype=float)
        width = np.diff(np.append(t, s.get("sim_time_s") or (t[-1] + 1.0)))
        power = thin(power.assign(busy_gpus=power["busy_gpu_s"] / np.where(width > 0, width, np.nan)))
        out.append(("Power", figure_html(power_figure(power, s), "power")))
        if levels is not None and len(levels):
            out.append(("Power per rack and row", figure_html(levels_figure(levels, s), "racks")))
    lat = []
    if calls is not None and len(calls):
        from agentwatt.sim.report import call_metrics
        c = calls if "ttft_s" in calls else call_metrics(calls)
        c = c[c["status"] == "finished"]
        lat += [figure_html(ccdf_figure(c, "ttft_s", "ttft_s", s), "lat_ttft"),
                figure_html(ccdf_figure(c, "e2e_s", "call_e2e_s", s), "lat_call")]
    if sessions is not None and len(sessions):
        f = sessions[sessions["status"] == "finished"].assign(e2e_s=lambda d: d["finish_s"] - d["arrival_s"])
        lat.append(figure_html(ccdf_figure(f, "e2e_s", "session_e2e_s", s), "lat_session"))
    if lat:
        out.append(("Latency distributions per agent class (CCDF, log-log)", "".join(lat)))
    if power is not None:
        out.append(("KV cache and batch timelines", figure_html(timeline_figure(power, s), "timeline")))
    return out


def run_report(folder: str | Path) -> str:
    """The HTML page of a run folder."""
    run = load_run(folder)
    s = run["summary"]
    agents = [[a, d.get("sessions_completed"), d.get("llm_calls_per_session"), (d.get("session_e2e_s") or {}).get("p50"),
               (d.get("session_e2e_s") or {}).get("p99"), (d.get("ttft_s") or {}).get("p99"),
               d.get("gpu_energy_per_session_j"), d.get("tool_time_share")] for a, d in (s.get("by_agent") or {}).items()]
    sections = [("Run", _overview(s)), ("Latency (s)", _latency_table(s)),
                ("Throughput, power and energy", table(["metric", "value"], [[label(k), _flat_get(s, k)]
                                                                           for k in RUN_KEYS])),
                ("Per agent class", table(["agent", "sessions", "LLM calls/session", "session e2e p50 (s)",
                                           "session e2e p99 (s)", "TTFT p99 (s)", "GPU energy/session (J)",
                                           "tool time share"], agents)),
                *_figures(run)]
    return page(f"agentwatt run: {s.get('scenario')}", sections,
                note="Simulated by agentwatt. Drag on a plot to zoom, double-click to reset; hover for values. "
                     "This file is self-contained: it opens offline and can be sent on as is.")


def write_report(folder: str | Path, text: str) -> Path:
    return atomic_write_text(Path(folder) / REPORT_FILE, text)
