"""Issue 17's metrics: percentiles (p95, p99.9, configurable), queueing delay and the per-call columns,
throughput and J/token, the steady-state window, one power naming scheme, the vLLM export."""
import json

import numpy as np
import pytest

from agentwatt.core.errors import InputError
from agentwatt.sim.output import write_results
from agentwatt.sim.report import pct_key, vllm_benchmark
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict


def _sc(run_over=None, replicas=1, rate=2.0, **tables):
    return scenario_from_dict({**tables,
        "name": "m", "profile": "llama-3.1-8b_a100-40gb",
        "run": {"seed": 5, "duration_s": 60.0, "drain_timeout_s": 600.0, **(run_over or {})},
        "fleet": {"replicas": replicas},
        "workload": [{"agent": "chatbot-sharegpt", "rate_per_s": rate}, {"agent": "react-hotpotqa", "rate_per_s": 0.4}],
    }, "test")


@pytest.fixture(scope="module")
def res():
    return run(_sc())


def test_default_percentiles_include_p95_and_p99_9(res):
    s = res.summary
    assert s["percentiles"] == [50, 90, 95, 99, 99.9]
    fin = res.calls[res.calls["status"] == "finished"]
    for key, col in (("ttft_s", "ttft_s"), ("call_e2e_s", "e2e_s"), ("queue_s", "queue_s")):
        x = fin[col].dropna().to_numpy()
        for p in (50, 95, 99.9):
            assert s[key][pct_key(p)] == pytest.approx(float(np.percentile(x, p)), rel=1e-8)
    e2e = res.sessions.query("status == 'finished'").eval("finish_s - arrival_s").to_numpy()
    assert s["session_e2e_s"]["p95"] == pytest.approx(float(np.percentile(e2e, 95)), rel=1e-8)
    assert s["session_e2e_s"]["p90"] <= s["session_e2e_s"]["p95"] <= s["session_e2e_s"]["p99"] \
        <= s["session_e2e_s"]["p99_9"]


def test_percentiles_are_configurable():
    s = run(_sc({"percentiles": [99.9, 50]}, rate=0.5)).summary
    assert s["percentiles"] == [50, 99.9]
    assert set(s["ttft_s"]) == {"mean", "p50", "p99_9", "n"}
    with pytest.raises(InputError, match=r"\[run\] percentiles = \[50, 100\]: expected a list of distinct numbers"):
        _sc({"percentiles": [50, 100]})


def test_per_call_columns_and_queueing_delay(res):
    c = res.calls[res.calls["status"] == "finished"]
    for col in ("start_s", "queue_s", "ttft_s", "tpot_s", "e2e_s"):
        assert col in res.calls.columns
    np.testing.assert_allclose(c["queue_s"], c["start_s"] - c["submit_s"])
    np.testing.assert_allclose(c["ttft_s"], c["first_token_s"] - c["submit_s"])
    np.testing.assert_allclose(c["e2e_s"], c["finish_s"] - c["submit_s"])
    # submit <= first scheduled < first token: the queueing delay is the part of TTFT before any step
    assert (c["queue_s"] >= 0).all() and (c["queue_s"] < c["ttft_s"]).all()


def test_queueing_delay_of_a_one_at_a_time_server():
    """max_num_seqs = 1: calls are served one after another, so a call starts no earlier than the
    previous one finished, and its queueing delay is exactly that wait when it arrived during it."""
    r = run(_sc(rate=0.5, engine={"max_num_seqs": 1}))
    c = r.calls[r.calls["status"] == "finished"].sort_values("start_s")
    start, fin, sub = c["start_s"].to_numpy(), c["finish_s"].to_numpy(), c["submit_s"].to_numpy()
    assert (start[1:] >= fin[:-1] - 1e-9).all()
    waited = sub[1:] < fin[:-1]
    assert waited.sum() > 10
    np.testing.assert_allclose(start[1:][waited] - sub[1:][waited], c["queue_s"].to_numpy()[1:][waited])
    assert (start[1:][waited] - fin[:-1][waited] < 0.2).all()   # picked up by the next step (one step at most)
    assert r.summary["queue_s"]["mean"] > 10 * run(_sc(rate=0.5)).summary["queue_s"]["mean"]


def test_throughput_and_energy_per_token(res):
    s, c = res.summary, res.calls[res.calls["status"] == "finished"]
    tp = s["throughput"]
    assert tp["window_s"] == pytest.approx(s["sim_time_s"])
    assert tp["calls_per_s"] * tp["window_s"] == pytest.approx(len(c))
    assert tp["output_tokens_per_s"] * tp["window_s"] == pytest.approx(c["output_tokens"].sum())
    assert tp["output_tokens_per_s_per_gpu"] == pytest.approx(tp["output_tokens_per_s"] / s["gpus"])
    assert s["gpu_energy_per_output_token_j"] == pytest.approx(s["gpu_energy_j"] / c["output_tokens"].sum())
    assert s["gpu_energy_per_token_j"] == pytest.approx(
        s["gpu_energy_j"] / (c["output_tokens"].sum() + c["prompt_tokens"].sum()))
    assert s["facility_energy_per_output_token_j"] > s["gpu_energy_per_output_token_j"]


def test_one_power_naming_scheme(res):
    s = res.summary
    for old in ("peak_power_w", "avg_power_w", "energy_per_session_j", "energy_per_call_j"):
        assert old not in s
    assert s["gpu_avg_power_w"] == pytest.approx(s["gpu_energy_j"] / s["sim_time_s"])
    assert s["gpu_peak_power_w"] == pytest.approx(res.power["gpu_power_w"].max())
    assert s["facility_peak_power_w"] >= s["gpu_peak_power_w"]


def test_steady_state_window_leaves_out_warm_up_and_drain(res):
    st = run(_sc({"steady_state": True}))
    s, w = st.summary, st.summary["metrics_window"]
    assert w["steady_state"] and 0 < w["start_s"] < w["end_s"] == 60.0
    assert not res.summary["metrics_window"]["steady_state"]
    fin = st.calls[(st.calls["status"] == "finished") & st.calls["submit_s"].between(w["start_s"], w["end_s"])]
    assert s["ttft_s"]["n"] == len(fin)
    p = st.power
    inside = (p["time_s"] >= w["start_s"]) & (p["time_s"] + 1.0 <= w["end_s"])
    assert s["gpu_peak_power_w"] == pytest.approx(p.loc[inside, "gpu_power_w"].max())
    assert s["throughput"]["window_s"] == pytest.approx(w["end_s"] - w["start_s"])
    # the drain (an emptying fleet) lowers the whole-run average: the steady state draws more
    assert s["gpu_avg_power_w"] > res.summary["gpu_avg_power_w"]


def test_vllm_benchmark_export(res, tmp_path):
    written = write_results(res, tmp_path, plots=False)
    v = json.loads(written["vllm_benchmark"].read_text())
    c = res.calls[res.calls["status"] == "finished"]
    assert v["completed"] == len(c) and v["failed"] == 0
    assert v["total_output_tokens"] == int(c["output_tokens"].sum())
    assert v["median_ttft_ms"] == pytest.approx(1e3 * c["ttft_s"].median())
    assert v["p99_ttft_ms"] == pytest.approx(1e3 * res.summary["ttft_s"]["p99"])
    assert v["p99.9_e2el_ms"] == pytest.approx(1e3 * res.summary["call_e2e_s"]["p99_9"])
    assert v["request_throughput"] == pytest.approx(res.summary["throughput"]["calls_per_s"])
    assert v == vllm_benchmark(res.calls, res.summary)
