"""Regressions found by the valid-scenario fuzzer (benchmarks/fuzzing/valid.py): the end of a run and
dropped calls leave the books consistent."""
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict


def test_step_in_progress_at_the_end_is_booked():
    # a block of decode steps (or one step) cut by the end of the run keeps its energy and busy
    # time up to the end, so the GPU never draws less than idle; both step modes agree
    out = {}
    for skip in (True, False):
        data = {"run": {"seed": 1, "duration_s": 5.0, "drain_timeout_s": 2.0}, "engine": {"step_skipping": skip},
                "workload": [{"agent": "synthetic-fixed", "rate_per_s": 1.0,
                              "knobs": {"prompt_tokens": 100, "output_tokens": 4000}}]}
        res = run(scenario_from_dict(data, "in-flight"))
        assert res.summary["calls_in_flight"] > 0
        assert float(res.power["gpu_power_w"].min()) >= res.profile.power.idle_w * res.summary["gpus"] - 1e-9
        out[skip] = res.summary
    on, off = out[True], out[False]
    assert on["decode_tokens"] == off["decode_tokens"]
    assert on["steps"] == off["steps"]
    # a decode block's joules are a closed form of its steps' (power rising with the context read)
    assert abs(on["gpu_energy_j"] - off["gpu_energy_j"]) <= 1e-6 * off["gpu_energy_j"]
    assert on["gpu_utilization"] == off["gpu_utilization"]


def test_dropped_call_releases_the_sessions_kv_pin():
    # KV kept for a session between calls is handed to its next call and released when that call
    # is admitted; a call too long for the cache is never admitted, and must release it too
    data = {"run": {"seed": 0, "duration_s": 6.5, "drain_timeout_s": 14.0}, "fleet": {"replicas": 2},
            "engine": {"kv_retention": "keep", "kv_capacity_tokens": 4096},
            "workload": [{"agent": "react-hotpotqa", "rate_per_s": 1.25}]}
    s = run(scenario_from_dict(data, "pins")).summary   # the end-of-run invariants check the pins
    assert s["calls_dropped"] > 0
