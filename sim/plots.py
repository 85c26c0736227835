"""PNG plots drawn from the result tables only. matplotlib is imported lazily (Agg backend)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agentwatt.core.io import atomic_write


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def integer_ticks(axis) -> None:
    """Whole-number ticks on an axis of counts (replicas, GPUs): no 2.5 replicas."""
    from matplotlib.ticker import MaxNLocator
    axis.set_major_locator(MaxNLocator(integer=True))


def ccdf_points(values, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(x, P(X >= x)) of the positive finite ``values``, sorted; from 1 down to 1/n, never 0. Above
    ``max_points`` values, a subset: ranks evenly spaced in the body plus log-spaced ranks towards the
    slowest value (kept), so the tail a log-log plot shows is exact."""
    x = np.sort(np.asarray(values, dtype=float))
    x = x[np.isfinite(x) & (x > 0)]
    n = len(x)
    y = 1.0 - np.arange(n) / n if n else np.array([])
    if n > max_points:
        body = np.linspace(0, n - 1, max_points // 2)
        tail = n - np.logspace(0, np.log10(n), max_points // 2)
        idx = np.unique(np.clip(np.concatenate([body, tail]).astype(int), 0, n - 1))
        x, y = x[idx], y[idx]
    return x, y


def ccdf(ax, values, label: str) -> None:
    """P(X >= x) of the positive ``values`` as a step line on log-log axes: the tail stays readable
    (a linear CDF squashes it into the top pixels)."""
    v = np.asarray(values, dtype=float)
    n = int((np.isfinite(v) & (v > 0)).sum())
    x, y = ccdf_points(v)
    if n:
        ax.step(x, y, where="post", label=f"{label} (n={n})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("share slower than x (CCDF)")


def figure_problems(fig) -> list[str]:
    """What a reader would stumble on in a drawn figure: an axis label or title overlapping another
    label or another plot's area, an annotation crossing its plot's frame, a bar drawn outside the
    visible range (a stacked bar on a log axis that starts at zero). Empty when the figure is clean."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    out: list[str] = []
    axes = [ax for ax in fig.axes if ax.get_visible()]
    from matplotlib.transforms import Bbox

    def padded(b, px: float = 4.0):   # text closer than a few pixels reads as one
        return Bbox.from_extents(b.x0 - px, b.y0 - px, b.x1 + px, b.y1 + px)
    labels = [(ax, t, padded(t.get_window_extent(r))) for ax in axes
              for t in (ax.xaxis.label, ax.yaxis.label, ax.title) if t.get_visible() and t.get_text()]
    for i, (ax, t, box) in enumerate(labels):
        for ax2, t2, box2 in labels[i + 1:]:
            if box.overlaps(box2):
                out.append(f"labels overlap: {t.get_text()!r} and {t2.get_text()!r}")
        for other in axes:
            if other is not ax and other.bbox.bounds != ax.bbox.bounds and box.overlaps(other.patch.get_window_extent(r)):
                out.append(f"label {t.get_text()!r} runs into another plot")
    for ax in axes:
        frame = ax.patch.get_window_extent(r)
        for t in ax.texts:
            b = t.get_window_extent(r)
            if t.get_visible() and t.get_text() and frame.overlaps(b) and not (
                    frame.x0 - 1 <= b.x0 and b.x1 <= frame.x1 + 1 and frame.y0 - 1 <= b.y0 and b.y1 <= frame.y1 + 1):
                out.append(f"annotation {t.get_text()!r} crosses the frame of {ax.get_title()!r}")
        from matplotlib.container import BarContainer
        lo, hi = sorted(ax.get_ylim())
        for bar in (b for c in ax.containers if isinstance(c, BarContainer) for b in c):
            y0, y1 = sorted((bar.get_y(), bar.get_y() + bar.get_height()))
            if bar.get_height() and (y1 <= lo or y0 >= hi or (ax.get_yscale() == "log" and y1 <= lo * 1.0001)):
                out.append(f"a bar of {ax.get_title()!r} is outside the visible range")
    return sorted(set(out))


def save_figure(fig, path: Path) -> Path:
    def w(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, w)
    pyplot().close(fig)
    return path


def latency_ccdf(calls: pd.DataFrame, sessions: pd.DataFrame, path: Path, summary: dict | None = None,
                 slos: dict[str, float] | None = None) -> Path:
    return save_figure(latency_ccdf_figure(calls, sessions, summary, slos), path)


def latency_ccdf_figure(calls: pd.DataFrame, sessions: pd.DataFrame, summary: dict | None = None,
                        slos: dict[str, float] | None = None):
    """P(latency > x) of TTFT, call e2e and session e2e, one line per agent class, log-log so the tail
    shows; the overall p50 and p99 (``summary``) and any SLO (``slos``: summary key → seconds) marked."""
    from agentwatt.sim.labels import label
    from agentwatt.sim.report import call_metrics, session_metrics
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    c = call_metrics(calls[calls["status"] == "finished"]) if len(calls) else None
    s = session_metrics(sessions[sessions["status"] == "finished"]) if len(sessions) else None
    panels = [(c, "ttft_s", "ttft_s"), (c, "e2e_s", "call_e2e_s"), (s, "e2e_s", "session_e2e_s")]
    for ax, (df, col, key) in zip(axes, panels):
        if df is not None and len(df):
            for agent, g in df.groupby("agent", sort=True):
                ccdf(ax, g[col], agent)
            ax.xaxis.set_minor_formatter(pyplot().matplotlib.ticker.NullFormatter())   # no crowded 2×10⁻² labels
            _markers(ax, (summary or {}).get(key) or {}, (slos or {}).get(key))
            ax.legend(fontsize=7, loc="lower left")
        ax.set_xlabel(label(key))
        ax.set_ylabel("share slower than x (CCDF)")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Latency tails (CCDF, log-log)")
    fig.tight_layout()
    return fig


def _markers(ax, stats: dict, slo: float | None) -> None:
    for stat, ls in (("p50", ":"), ("p99", "--")):
        if stats.get(stat):
            ax.axvline(stats[stat], color="0.35", ls=ls, lw=1, label=f"{stat} {stats[stat]:.3g} s (all)")
    if slo is not None:
        ax.axvline(slo, color="C3", lw=1.2, label=f"SLO {slo:g} s")


def power_over_time(power: pd.DataFrame, path: Path, title: str = "Fleet power", summary: dict | None = None) -> Path:
    return save_figure(power_figure(power, title, summary), path)


def power_figure(power: pd.DataFrame, title: str = "Fleet power", summary: dict | None = None):
    """GPU, IT and facility power; with ``summary``: the facility nameplate, the facility P95, the row
    power limit when a row's nameplate would reach it, and the drain (no arrivals) shaded."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(power["time_s"], power["gpu_power_w"] / 1e3, lw=0.9, label="GPUs")
    if "facility_power_w" in power:
        ax.plot(power["time_s"], power["it_power_w"] / 1e3, lw=0.9, label="IT (GPUs + hosts + network)")
        ax.plot(power["time_s"], power["facility_power_w"] / 1e3, lw=0.9, label="facility (IT × PUE)")
    s = summary or {}
    pv, fp = s.get("provisioning") or {}, s.get("facility_power") or {}
    top = float(power.get("facility_power_w", power["gpu_power_w"]).max())
    for value, text, style in ((pv.get("nameplate_facility_w"), "facility nameplate (TDP)", {"color": "C3", "ls": "--"}),
                               (fp.get("p95_w"), "facility P95", {"color": "0.3", "ls": "-."}),
                               (pv.get("row_power_limit_w"), "row power limit", {"color": "C3", "ls": ":"})):
        if value and (text != "row power limit" or value <= 1.5 * (pv.get("nameplate_it_w") or 0)):
            ax.axhline(value / 1e3, lw=1, label=f"{text} {value / 1e3:.3g} kW", **style)
            top = max(top, value)
    a, b = s.get("arrivals_end_s"), s.get("sim_time_s")
    if a is not None and b is not None and b > a:
        ax.axvspan(a, b, color="0.85", zorder=0, label="drain: arrivals over, fleet emptying")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("power (kW)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.set_ylim(0, 1.08 * top / 1e3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
