"""Analytic queueing check: one request at a time with a constant service time is an M/D/1 queue.

Pollaczek–Khinchine for deterministic service S at arrival rate λ (ρ = λS):
    Wq = ρ·S / (2·(1 − ρ))
The simulated wait is TTFT minus the prefill step (the request waits in the queue, then its
prefill runs alone). Long run, warm-up dropped, within 5 %.
"""
import numpy as np
import pytest

from agentwatt.core.profile import load_profile
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict

P, O = 64, 4


def _service_s(lat):
    prefill = lat.step_s(P, P * P, 0, 0)
    decode = sum(lat.step_s(0, 0, 1, P + k) for k in range(1, O))
    return prefill, prefill + decode


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_md1_mean_wait(rho):
    prof = load_profile("llama-3.1-8b_a100-40gb")
    prefill, S = _service_s(prof.latency)
    lam = rho / S
    n_target = 40_000
    sc = scenario_from_dict({
        "profile": "llama-3.1-8b_a100-40gb",
        "run": {"seed": 11, "duration_s": n_target / lam, "drain_timeout_s": 1e6},
        "fleet": {"replicas": 1},
        "engine": {"max_num_seqs": 1, "prefix_caching": False},
        "workload": [{"agent": "synthetic-fixed", "rate_per_s": lam,
                      "knobs": {"prompt_tokens": P, "output_tokens": O}}],
    }, "md1")
    res = run(sc, profile=prof)
    c = res.calls.sort_values("submit_s")
    e2e = (c["finish_s"] - c["submit_s"]).to_numpy()
    assert np.allclose(e2e.min(), S, rtol=1e-9), "service time is the constant S"
    wait = (c["first_token_s"] - c["submit_s"]).to_numpy() - prefill
    wait = wait[len(wait) // 10:]  # drop warm-up
    expected = rho * S / (2 * (1 - rho))
    assert wait.mean() == pytest.approx(expected, rel=0.05)
