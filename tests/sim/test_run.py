"""Whole runs: conservation, determinism, energy integral, prefix caching, outputs."""
import json
import subprocess
import sys

import numpy as np
import pytest

from agentwatt.sim.output import write_results
from agentwatt.sim.run import run
from agentwatt.sim.scenario import load_scenario, scenario_from_dict


def _scenario(**over):
    d = {
        "name": "t",
        "profile": "llama-3.1-8b_a100-40gb",
        "run": {"seed": 3, "duration_s": 60.0, "drain_timeout_s": 600.0},
        "fleet": {"replicas": 2},
        "workload": [{"agent": "chatbot-sharegpt", "rate_per_s": 2.0},
                     {"agent": "react-hotpotqa", "rate_per_s": 0.5}],
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k] = {**d[k], **v}
        else:
            d[k] = v
    return scenario_from_dict(d, "test")


def _strip_wall(summary):
    return {k: v for k, v in summary.items() if k != "wall_time_s"}


def test_conservation_with_sessions_cut_off_in_flight():
    res = run(_scenario(run={"drain_timeout_s": 0.0}))
    s = res.summary
    assert s["sessions_in_flight"] > 0, "the cut-off should leave sessions in flight"
    assert s["calls_submitted"] == s["calls_completed"] + s["calls_dropped"] + s["calls_in_flight"]
    assert s["sessions_arrived"] == s["sessions_completed"] + s["sessions_dropped"] + s["sessions_in_flight"]
    fin = res.calls[res.calls["status"] == "finished"]
    assert (fin["output_tokens"] == fin["output_tokens_requested"]).all()
    assert len(fin) == s["calls_completed"]


def test_drained_run_finishes_everything_and_tokens_add_up():
    res = run(_scenario())
    s = res.summary
    assert s["sessions_in_flight"] == 0 and s["calls_in_flight"] == 0
    assert s["sessions_completed"] == s["sessions_arrived"] > 0
    # every decode step emits one token; each call's first token comes from its prefill
    assert s["decode_tokens"] == s["output_tokens"] - s["calls_completed"]


def test_energy_equals_integral_of_power_series():
    res = run(_scenario())
    s = res.summary
    p = res.power
    width = np.minimum(1.0, s["sim_time_s"] - p["time_s"].to_numpy())
    integral = float((p["gpu_power_w"].to_numpy() * width).sum())
    assert integral == pytest.approx(s["gpu_energy_j"], rel=1e-6)
    assert s["gpu_energy_j"] == pytest.approx(s["gpu_busy_energy_j"] + s["gpu_idle_energy_j"], rel=1e-8)
    # every busy joule is attributed to some call
    assert res.calls["energy_j"].sum() == pytest.approx(s["gpu_busy_energy_j"], rel=1e-6)
    assert s["gpu_avg_power_w"] == pytest.approx(s["gpu_energy_j"] / s["sim_time_s"])


def test_same_seed_same_summary_different_seed_differs():
    a = _strip_wall(run(_scenario()).summary)
    b = _strip_wall(run(_scenario()).summary)
    c = _strip_wall(run(_scenario(run={"seed": 4})).summary)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert json.dumps(a, sort_keys=True) != json.dumps(c, sort_keys=True)


def test_same_seed_identical_summary_across_processes(tmp_path):
    code = ("import json,sys; from agentwatt.sim.run import run; from agentwatt.sim.scenario import load_scenario;"
            "s=run(load_scenario()).summary; s.pop('wall_time_s'); print(json.dumps(s, sort_keys=True))")
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(h), "PATH": ""}).stdout for h in (1, 2)]
    assert outs[0] == outs[1]


def test_prefix_caching_reduces_prefill_work_for_react():
    wl = [{"agent": "react-hotpotqa", "rate_per_s": 0.5}]
    on = run(_scenario(workload=wl, fleet={"replicas": 1})).summary
    off = run(_scenario(workload=wl, fleet={"replicas": 1}, engine={"prefix_caching": False})).summary
    assert on["prompt_tokens"] == off["prompt_tokens"]
    assert on["prefill_tokens_computed"] < 0.6 * off["prefill_tokens_computed"]
    assert on["prefix_cache_hit_rate"] > 0.4 and off["prefix_cache_hit_rate"] is None
    assert on["ttft_s"]["mean"] < off["ttft_s"]["mean"]


def test_round_robin_spreads_calls_over_replicas():
    res = run(_scenario(router={"policy": "round_robin", "session_affinity": False}, fleet={"replicas": 3}))
    counts = res.calls["replica"].value_counts()
    assert len(counts) == 3 and counts.max() - counts.min() <= 1


def test_write_results_files(tmp_path):
    res = run(_scenario())
    written = write_results(res, tmp_path)
    for name in ("summary.json", "calls.parquet", "sessions.parquet", "power.parquet", "power_levels.parquet",
                 "latency_ccdf.png", "power.png"):
        assert (tmp_path / name).stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("sessions_completed", "calls_completed", "ttft_s", "tpot_s", "call_e2e_s", "session_e2e_s",
                "gpu_utilization", "gpu_energy_j", "gpu_energy_per_session_j", "gpu_avg_power_w", "gpu_peak_power_w",
                "sim_time_s", "wall_time_s", "profile", "seed", "versions"):
        assert key in summary
    for key in ("p50", "p90", "p99"):
        assert summary["session_e2e_s"][key] is not None
    assert summary["profile"]["provenance"]["references"]
    assert len(written) == 8          # + vllm_benchmark.json (issue 17)


def test_default_scenario_loads():
    sc = load_scenario()
    assert sc.fleet.replicas >= 1 and sc.workload


def test_closed_loop_one_at_a_time_never_overlaps():
    res = run(_scenario(fleet={"replicas": 1}, run={"duration_s": 1e6},
                        workload=[{"agent": "react-hotpotqa", "arrival": "closed", "concurrency": 1, "sessions": 20}]))
    s = res.sessions.sort_values("arrival_s")
    assert len(s) == 20
    assert (s["arrival_s"].to_numpy()[1:] >= s["finish_s"].to_numpy()[:-1] - 1e-9).all()
    # one request at a time: no call ever waits behind another
    c = res.calls
    assert (c["preemptions"] == 0).all()


def test_mix_on_one_arrival_stream_reports_per_class():
    res = run(_scenario(workload=[{"mix": {"chatbot-sharegpt": 3, "react-hotpotqa": 1}, "rate_per_s": 4.0,
                                   "knobs": {"react-hotpotqa": {"iteration_budget": 4}}}]))
    by = res.summary["by_agent"]
    assert set(by) == {"chatbot-sharegpt", "react-hotpotqa"}
    n_chat, n_react = by["chatbot-sharegpt"]["sessions_completed"], by["react-hotpotqa"]["sessions_completed"]
    assert 2.0 < n_chat / n_react < 4.5
    assert by["react-hotpotqa"]["llm_calls_per_session"] <= 4


@pytest.mark.parametrize("policy", ["keep", "ttl"])
def test_kv_retention_keeps_context_across_tool_waits(policy):
    # a small KV pool under a busy ReAct load: with "drop", contexts waiting on a tool get evicted
    # knobs pinned: the test is about the KV policy, not the workload defaults
    knobs = {"iteration_budget": 15, "stuck_fraction": 0.0, "output_mean_tokens": 80, "extra_calls_mean": 3.0}
    base = dict(workload=[{"agent": "react-hotpotqa", "rate_per_s": 0.8, "knobs": knobs}], fleet={"replicas": 1},
                run={"duration_s": 120.0})
    eng = {"kv_capacity_tokens": 30_000}
    drop = run(_scenario(engine={**eng, "kv_retention": "drop"}, **base)).summary
    kept = run(_scenario(engine={**eng, "kv_retention": policy, "kv_retention_ttl_s": 3.0}, **base)).summary
    assert kept["prefix_cache_hit_rate"] > drop["prefix_cache_hit_rate"] + 0.015
    assert kept["prefill_tokens_computed"] < drop["prefill_tokens_computed"]
    assert kept["sessions_in_flight"] == 0  # pins never deadlock the pool


def test_step_skipping_gives_the_same_results():
    on = run(_scenario(engine={"step_skipping": True})).summary
    off = run(_scenario(engine={"step_skipping": False})).summary
    assert on["step_events"] < off["step_events"]
    assert on["steps"] == off["steps"]
    for key in ("ttft_s", "tpot_s", "call_e2e_s", "session_e2e_s"):
        for p in ("p50", "p99", "mean"):
            assert on[key][p] == pytest.approx(off[key][p], rel=1e-3), (key, p)
    assert on["gpu_energy_j"] == pytest.approx(off["gpu_energy_j"], rel=1e-3)


def test_result_files_byte_identical_across_processes(tmp_path):
    import hashlib
    code = ("import sys; from agentwatt.sim.run import run; from agentwatt.sim.output import write_results;"
            "from agentwatt.sim.scenario import load_scenario;"
            "r=run(load_scenario(None, {'run.duration_s': 60})); write_results(r, sys.argv[1])")
    digests = []
    for i, h in enumerate(("1", "7")):
        out = tmp_path / f"o{i}"
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, env={"PYTHONHASHSEED": h, "PATH": ""})
        files = sorted(p for p in out.iterdir())
        d = {}
        for p in files:
            if p.name == "summary.json":
                s = json.loads(p.read_text())
                s.pop("wall_time_s")
                d[p.name] = json.dumps(s, sort_keys=True)
            else:
                d[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
        digests.append(d)
    assert digests[0] == digests[1]
