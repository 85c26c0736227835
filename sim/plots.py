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


def save_figure(fig, path: Path) -> Path:
    def w(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, w)
    pyplot().close(fig)
    return path


def latency_cdf(calls: pd.DataFrame, sessions: pd.DataFrame, path: Path) -> Path:
    """Empirical CDFs of TTFT, call e2e and session e2e, one line per agent class."""
    from agentwatt.sim.report import call_metrics, session_metrics
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    c = call_metrics(calls[calls["status"] == "finished"]) if len(calls) else None
    s = session_metrics(sessions[sessions["status"] == "finished"]) if len(sessions) else None
    panels = [(c, "ttft_s", "time to first token (s)"), (c, "e2e_s", "LLM call end-to-end (s)"),
              (s, "e2e_s", "session (agent task) end-to-end (s)")]
    for ax, (df, col, label) in zip(axes, panels):
        if df is not None and len(df):
            for agent, g in df.groupby("agent", sort=True):
                x = np.sort(g[col].dropna().to_numpy())
                if len(x):
                    ax.plot(x, np.arange(1, len(x) + 1) / len(x), label=f"{agent} (n={len(x)})")
            ax.set_xscale("log")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel(label)
        ax.set_ylabel("fraction ≤ x")
        ax.grid(alpha=0.3)
    fig.suptitle("Latency CDFs")
    return save_figure(fig, path)


def power_over_time(power: pd.DataFrame, path: Path, title: str = "Fleet power") -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(power["time_s"], power["gpu_power_w"] / 1e3, lw=0.9, label="GPUs")
    if "facility_power_w" in power:
        ax.plot(power["time_s"], power["it_power_w"] / 1e3, lw=0.9, label="IT (GPUs + hosts + network)")
        ax.plot(power["time_s"], power["facility_power_w"] / 1e3, lw=0.9, label="facility (IT × PUE)")
        ax.legend(fontsize=8)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("power (kW)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    return save_figure(fig, path)
