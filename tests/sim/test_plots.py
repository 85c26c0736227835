"""Issue 17's plot defects, each pinned: latency tails on log-log CCDFs with p50/p99/SLO markers; power
with the nameplate, the P95 and the drain shaded; axis labels in words with units; integer ticks
for counts."""
import numpy as np
import pandas as pd
import pytest

from agentwatt.sim import plots as P
from agentwatt.sim.labels import label
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict


@pytest.fixture(scope="module")
def res():
    return run(scenario_from_dict({"name": "p", "profile": "llama-3.1-8b_a100-40gb",
                                   "run": {"seed": 1, "duration_s": 40.0},
                                   "fleet": {"replicas": 2},
                                   "workload": [{"agent": "chatbot-sharegpt", "rate_per_s": 1.0},
                                                {"agent": "react-hotpotqa", "rate_per_s": 0.3}]}, "t"))


def test_latency_is_a_log_log_ccdf_with_p50_p99_and_slo(res):
    fig = P.latency_ccdf_figure(res.calls, res.sessions, res.summary, slos={"session_e2e_s": 30.0})
    ax = fig.axes[2]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert ax.get_xlabel() == "session (agent task) end-to-end (s)"
    verticals = {ln.get_label().split()[0]: ln.get_xdata()[0] for ln in ax.lines if ln.get_label().startswith(("p50", "p99", "SLO"))}
    assert verticals["p99"] == pytest.approx(res.summary["session_e2e_s"]["p99"])
    assert verticals["p50"] == pytest.approx(res.summary["session_e2e_s"]["p50"]) and verticals["SLO"] == 30.0
    curve = [ln for ln in ax.lines if "(n=" in ln.get_label()][0]
    y = np.asarray(curve.get_ydata())
    assert y[0] == 1.0 and y.min() > 0       # from 1 to 1/n: the slowest session is on the log axis
    assert P.figure_problems(fig) == []


def test_power_plot_has_nameplate_p95_and_the_drain_shaded(res):
    s = res.summary
    fig = P.power_figure(res.power, summary=s)
    ax = fig.axes[0]
    levels = {ln.get_label().split(" ")[1]: ln.get_ydata()[0] for ln in ax.lines if ln.get_label().startswith("facility ")
              and "kW" in ln.get_label()}
    assert levels["nameplate"] == pytest.approx(s["provisioning"]["nameplate_facility_w"] / 1e3)
    assert levels["P95"] == pytest.approx(s["facility_power"]["p95_w"] / 1e3)
    drain = [p for p in ax.patches if "drain" in p.get_label()]
    assert len(drain) == 1
    box = drain[0].get_bbox()   # in data coordinates along x
    assert (box.x0, box.x1) == pytest.approx((s["arrivals_end_s"], s["sim_time_s"]))
    assert ax.get_ylim()[1] > s["provisioning"]["nameplate_facility_w"] / 1e3   # the nameplate is inside the axes
    assert P.figure_problems(fig) == []


def test_figure_problems_finds_what_a_reader_stumbles_on():
    """The example defects of issue 17, drawn small: a stacked bar on a log axis starting at zero is
    invisible, a twin axis label runs into the next plot's label, an annotation crosses the frame."""
    plt = P.pyplot()
    fig, ax = plt.subplots()
    ax.bar([0, 1], [0.3, 3.0])
    ax.bar([0, 1], [0.0, 1.0], bottom=[0.3, 3.0])
    ax.set_yscale("log")
    ax.set_ylim(0.5, 10)
    assert any("outside the visible range" in p for p in P.figure_problems(fig))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    a.twinx().set_ylabel("accuracy proxy (%)")
    b.set_ylabel("GPU Wh per task")
    assert any("labels overlap" in p for p in P.figure_problems(fig))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ax.annotate("400 W", (1, 1), xytext=(4, 4), textcoords="offset points")
    assert any("crosses the frame" in p for p in P.figure_problems(fig))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    assert P.figure_problems(fig) == []


def test_sweep_plot_labels_in_words_and_integer_ticks(monkeypatch, tmp_path):
    from agentwatt.plan import plots as PP
    figs = []
    monkeypatch.setattr(PP, "save_figure", lambda fig, path: figs.append(fig) or path)
    summary = pd.DataFrame({"point": ["a", "b", "c"], "param.fleet.replicas": [1, 2, 3],
                            "metric": ["session_e2e_s.p99"] * 3, "n": [2, 2, 2], "mean": [30.0, 20.0, 15.0],
                            "std": [1.0] * 3, "ci_low": [25.0, 15, 10], "ci_high": [35.0, 25, 20],
                            "confidence": [0.95] * 3})
    PP.metric_vs_param(summary, "session_e2e_s.p99", tmp_path / "m.png")
    ax = figs[0].axes[0]
    assert ax.get_xlabel() == "replicas" and ax.get_ylabel() == "session (agent task) end-to-end, p99 (s)"
    figs[0].canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)      # no 1.5 replicas
    assert P.figure_problems(figs[0]) == []


def test_every_summary_metric_has_words_and_a_unit():
    for key in ("queue_s.p95", "ttft_s.p99_9", "gpu_peak_power_w", "facility_energy_per_output_token_j",
                "throughput.output_tokens_per_s_per_gpu", "by_agent.react-hotpotqa.session_e2e_s.p99"):
        text = label(key)
        assert "_" not in text.replace("react-hotpotqa", "") and text.endswith(")"), text
    assert label("session_e2e_s.p99_9") == "session (agent task) end-to-end, p99.9 (s)"


def test_ccdf_points_keep_the_tail_exact_when_thinned():
    v = np.random.default_rng(1).lognormal(size=100_000)
    x, y = P.ccdf_points(v, max_points=2000)
    assert len(x) <= 2000 and y[0] == 1.0 and x[0] == v.min()
    assert x[-1] == v.max() and y[-1] == pytest.approx(1 / len(v))          # the slowest value, at 1/n
    assert (np.diff(x) >= 0).all() and (np.diff(y) < 0).all()
    top = np.sort(v)[-20:]                                                   # the 20 slowest are all kept
    assert set(top) <= set(x)
    xs, ys = P.ccdf_points(v[:50])
    assert len(xs) == 50 and np.allclose(ys, 1 - np.arange(50) / 50)


def test_report_thins_long_series_to_bin_means():
    from agentwatt.sim.html import thin
    df = pd.DataFrame({"time_s": np.arange(12_001.0), "gpu_power_w": np.arange(12_001.0)})
    t = thin(df, 5000)
    assert len(t) == 4001 and t["gpu_power_w"].iloc[0] == 1.0               # means of 3 bins
    assert t["gpu_power_w"].mean() == pytest.approx(df["gpu_power_w"].mean(), rel=1e-3)
    assert thin(df.head(10), 5000) is not None and len(thin(df.head(10), 5000)) == 10
