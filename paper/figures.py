"""The report's PNG figures, drawn from the numbers the sections computed (never from a simulator)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from agentwatt.sim.plots import pyplot, save_figure


def calls_per_request(stats: dict[str, dict[str, float]], path: Path) -> Path:
    plt = pyplot()
    names = list(stats)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(11, 3.8))
    ax.bar(x - 0.2, [stats[n]["llm_calls"] for n in names], 0.4, label="LLM calls")
    ax.bar(x + 0.2, [stats[n]["tool_calls"] for n in names], 0.4, label="tool calls")
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("calls per request (log)")
    ax.set_title("Fig. 4 (simulated): calls per request, one request at a time")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def latency_breakdown(stats: dict[str, dict[str, float]], path: Path) -> Path:
    plt = pyplot()
    names = list(stats)
    x = np.arange(len(names))
    fig, (a, b) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    llm = np.array([stats[n]["llm"] for n in names])
    a.bar(x, 100 * llm, label="LLM calls")
    a.bar(x, 100 * (1 - llm), bottom=100 * llm, label="tools")
    a.set_ylabel("% of request latency")
    a.set_title("Fig. 5 (simulated): where a request's time goes")
    a.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    bottom = np.zeros(len(names))
    for key, label in (("prefill", "prefill"), ("decode", "decode"), ("idle", "idle (waiting for tools)")):
        v = 100 * np.array([stats[n][key] for n in names])
        b.bar(x, v, bottom=bottom, label=label)
        bottom += v
    b.set_ylabel("% of GPU time")
    b.set_title("Fig. 6 (simulated): what the GPU does")
    b.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    b.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    return save_figure(fig, path)


def latency_cdfs(latencies: dict[str, np.ndarray], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, v in latencies.items():
        xs = np.sort(v)
        line, = ax.plot(xs, np.arange(1, len(xs) + 1) / len(xs), label=f"{name} (p95 {np.percentile(v, 95):.1f} s)")
        ax.axvline(np.percentile(v, 95), color=line.get_color(), ls=":", lw=0.8)
    ax.set_xlabel("request latency served alone (s)")
    ax.set_ylabel("fraction ≤ x")
    ax.set_title("Fig. 7 (simulated): latency distribution, one request at a time")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def load_curves(curves: dict[str, dict[str, list]], limits: dict[str, float], knees: dict[str, float | None],
                path: Path) -> Path:
    """p95 latency against offered QPS; ``curves[workload][label] = [(rate, p95, stable), ...]``."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), layout="constrained")  # no overlapping y labels
    for ax, (name, by_label) in zip(np.atleast_1d(axes), curves.items()):
        for label, pts in by_label.items():
            r = [p[0] for p in pts]
            y = [p[1] for p in pts]
            line, = ax.plot(r, y, marker="o", ms=3, label=label)
            bad = [(p[0], p[1]) for p in pts if not p[2]]
            if bad:
                ax.plot(*zip(*bad), "x", color=line.get_color(), ms=7)
        ax.axhline(limits[name], color="grey", ls="--", lw=0.8, label="knee limit")
        if knees.get(name):
            ax.axvline(knees[name], color="k", ls=":", lw=0.8, label=f"knee {knees[name]:.2f} QPS")
        ax.set_ylim(0, 4 * limits[name])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("offered load (sessions/s)")
        ax.set_ylabel("p95 session latency (s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Fig. 11 (simulated): tail latency vs load on one A100 (x: sessions left unfinished)")
    return save_figure(fig, path)


def grouped_bars(groups: dict[str, dict[str, float]], ylabel: str, title: str, path: Path, log: bool = False) -> Path:
    """``groups[group][series] = value``: one cluster of bars per group."""
    plt = pyplot()
    names = list(groups)
    series = list(dict.fromkeys(s for g in groups.values() for s in g))
    x = np.arange(len(names))
    w = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names)), 3.8))
    for i, s in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * w, [groups[n].get(s, np.nan) for n in names], w, label=s)
    ax.set_xticks(x, names, fontsize=8, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def scaling(panels: list[tuple[str, str, list[tuple[float, float, float, float]]]], path: Path) -> Path:
    """One panel per knob: ``(title, knob label, [(knob, mean_s, p95_s, accuracy), ...])``."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 3.8))
    fig.subplots_adjust(wspace=0.5)
    for ax, (title, knob, pts) in zip(np.atleast_1d(axes), panels):
        k = [p[0] for p in pts]
        ax.plot(k, [p[1] for p in pts], marker="o", ms=3, label="mean latency")
        ax.plot(k, [p[2] for p in pts], marker="s", ms=3, label="p95 latency")
        if all(v > 0 and int(v) & (int(v) - 1) == 0 for v in k):
            ax.set_xscale("log", base=2)
        ax.set_xlabel(knob)
        ax.set_ylabel("latency alone (s)")
        ax.grid(alpha=0.3)
        ax2 = ax.twinx()
        ax2.plot(k, [100 * p[3] for p in pts], color="green", ls="--", marker="^", ms=3, label="accuracy proxy")
        ax2.set_ylabel("accuracy proxy (%)", color="green")
        ax2.set_ylim(0, 100)
        ax.set_title(title, fontsize=9)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
    return save_figure(fig, path)
