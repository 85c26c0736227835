"""Issue 17's report: one self-contained HTML file per run, sweep and plan folder (structure checks;
the real-browser test is tests/cli/test_report_browser.py), and the KV / batch timeline channels."""
import json
import re

import numpy as np
import pytest

from agentwatt.sim.html import run_report
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict
from tests.helpers import mix_scenario, one_error_line

TINY = mix_scenario(name="tiny", seed=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from click.testing import CliRunner
    from agentwatt.cli.main import main
    d = tmp_path_factory.mktemp("report")
    (d / "s.toml").write_text(TINY, encoding="utf-8")
    r = CliRunner().invoke(main, ["simulate", str(d / "s.toml"), "--out", str(d / "out"), "--no-plots"], obj={})
    assert r.exit_code == 0, r.output
    return d / "out"


def _figures(text: str) -> dict[str, dict]:
    """div id → the figure JSON Plotly.newPlot gets (data and layout)."""
    out = {}
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"displaylogo"', text, re.S):
        out[m.group(1)] = {"data": json.loads(m.group(2)), "layout": json.loads(m.group(3))}
    return out


def _arr(v) -> np.ndarray:
    """A Plotly array: a list, or (plotly >= 6) {"dtype": ..., "bdata": base64}."""
    if isinstance(v, dict):
        import base64
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v, dtype=float)


def test_simulate_writes_a_self_contained_report(run_dir):
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<(script|link)[^>]+(src|href)=", text)     # no script or stylesheet fetched: offline
    assert "Plotly.newPlot" in text and len(text) > 1_000_000                          # plotly.js embedded
    figs = _figures(text)
    assert {"power", "racks", "lat_ttft", "lat_call", "lat_session", "timeline"} <= set(figs)
    s = json.loads((run_dir / "summary.json").read_text())
    for key in ("p99", "p99.9", "queueing delay"):
        assert key in text


def test_power_figure_has_nameplate_p95_and_shaded_drain(run_dir):
    s = json.loads((run_dir / "summary.json").read_text())
    fig = _figures((run_dir / "report.html").read_text(encoding="utf-8"))["power"]
    ys = [sh.get("y0") for sh in fig["layout"]["shapes"] if sh.get("type") == "line"]
    assert s["provisioning"]["nameplate_facility_w"] / 1e3 in ys and s["facility_power"]["p95_w"] / 1e3 in ys
    rects = [sh for sh in fig["layout"]["shapes"] if sh.get("type") == "rect"]
    assert [(r["x0"], r["x1"]) for r in rects] == [(s["arrivals_end_s"], s["sim_time_s"])]
    assert fig["layout"]["xaxis"]["rangeslider"]["visible"]


def test_busy_gpus_timeline_matches_the_utilisation(run_dir):
    s = json.loads((run_dir / "summary.json").read_text())
    fig = _figures((run_dir / "report.html").read_text(encoding="utf-8"))["timeline"]
    busy = [t for t in fig["data"] if t["name"] == "busy GPUs"][0]
    y = _arr(busy["y"])
    assert y.max() <= s["gpus"] + 1e-9 and y.min() >= 0
    t = _arr(busy["x"])
    width = np.diff(np.append(t, s["sim_time_s"]))
    assert float((y * width).sum()) / (s["gpus"] * s["sim_time_s"]) == pytest.approx(s["gpu_utilization"], rel=1e-6)


def test_latency_is_a_log_log_ccdf_with_markers(run_dir):
    s = json.loads((run_dir / "summary.json").read_text())
    fig = _figures((run_dir / "report.html").read_text(encoding="utf-8"))["lat_session"]
    assert fig["layout"]["xaxis"]["type"] == "log" and fig["layout"]["yaxis"]["type"] == "log"
    curves = [t for t in fig["data"] if not t["name"].startswith(("p50", "p99"))]
    for t in curves:
        y = _arr(t["y"])
        assert y[0] == 1.0 and (np.diff(y) < 0).all() and y[-1] > 0     # P(X >= x): 1 down to 1/n, never 0
    p99 = [t for t in fig["data"] if t["name"].startswith("p99")][0]
    assert _arr(p99["x"])[0] == pytest.approx(s["session_e2e_s"]["p99"])


def test_report_command_for_run_sweep_and_plan_folders(run_dir, run_cli, tmp_path):
    (run_dir / "report.html").unlink()
    r = run_cli(["report", str(run_dir)], obj={})
    assert r.exit_code == 0 and (run_dir / "report.html").exists()
    (tmp_path / "s.toml").write_text(TINY, encoding="utf-8")
    r = run_cli(["sweep", str(tmp_path / "s.toml"), "--set", "fleet.replicas=1,2", "--seeds", "2", "--serial",
                 "--no-plots", "--out", str(tmp_path / "sw")], obj={})
    assert r.exit_code == 0, r.output
    figs = _figures((tmp_path / "sw" / "report.html").read_text(encoding="utf-8"))
    assert "pareto" in figs and "curve_0" in figs
    assert figs["curve_0"]["layout"]["xaxis"]["tickvals"] == [1.0, 2.0]     # integer ticks for replica counts
    r = run_cli(["sweep", str(tmp_path / "s.toml"), "--set", "fleet.replicas=1", "--seeds", "1", "--serial",
                 "--no-plots", "--no-report", "--out", str(tmp_path / "sw1")], obj={})
    assert r.exit_code == 0 and not (tmp_path / "sw1" / "report.html").exists()


def test_report_of_a_folder_that_is_not_a_result(run_cli, tmp_path):
    line = one_error_line(run_cli(["report", str(tmp_path)], obj={}))
    assert "no summary.json, sweep.json or plan.json" in line
    (tmp_path / "summary.json").write_text("{", encoding="utf-8")
    assert "summary.json: not JSON" in one_error_line(run_cli(["report", str(tmp_path)], obj={}))


def test_kv_and_batch_timelines_integrate_to_the_counters():
    sc = scenario_from_dict({"name": "t", "profile": "llama-3.1-8b_a100-40gb",
                             "run": {"seed": 4, "duration_s": 40.0},
                             "fleet": {"replicas": 2},
                             "workload": [{"agent": "react-hotpotqa", "rate_per_s": 1.0}]}, "t")
    res = run(sc)
    s, p = res.summary, res.power
    width = np.diff(np.append(p["time_s"].to_numpy(), s["sim_time_s"]))
    kv_block_s = float((p["kv_blocks_in_use"] * width).sum())
    assert kv_block_s / (s["replicas"] * s["kv_blocks_per_replica"] * s["sim_time_s"]) == \
        pytest.approx(s["kv_mean_utilization"], rel=1e-9)
    # sequences × seconds = decode tokens' step time at least: every sequence in a step is in the batch
    assert (p["sequences_in_batch"] >= 0).all() and p["sequences_in_batch"].max() <= 2 * 256
    assert "KV cache in use" in run_report_text(res, sc)


def run_report_text(res, sc, tmp=None):
    import tempfile
    from agentwatt.sim.output import write_results
    with tempfile.TemporaryDirectory() as d:
        write_results(res, d, plots=False)
        return run_report(d)
