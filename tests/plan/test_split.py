"""The prefill:decode split plan (plan/split.py): the smallest split meeting TTFT and TPOT SLOs."""
import pytest

from agentwatt.core.errors import InputError
from agentwatt.plan.plan import parse_slo
from agentwatt.plan.split import plan_split
from agentwatt.sim.run import run
from agentwatt.sim.scenario import load_scenario

# ReAct agents: long prompts, so the prefill pool matters as much as the decode pool
SCENARIO = """
name = "split"
profile = "llama-3.1-8b_a100-40gb"
[run]
seed = 3
duration_s = 30
drain_timeout_s = 600
[disaggregation]
prefill_replicas = 1
decode_replicas = 1
[[workload]]
agent = "react-hotpotqa"
rate_per_s = 5.0
"""
SLOS = [parse_slo("ttft_s.p90<=0.3"), parse_slo("tpot_s.p90<=0.03")]


def _meets(path, p, d, seed):
    s = run(load_scenario(path, {"disaggregation.prefill_replicas": p, "disaggregation.decode_replicas": d,
                                 "run.seed": seed})).summary
    return s["ttft_s"]["p90"] <= 0.3 and s["tpot_s"]["p90"] <= 0.03


def test_plan_split_finds_the_smallest_split(tmp_path):
    path = tmp_path / "split.toml"
    path.write_text(SCENARIO)
    res = plan_split(str(path), SLOS, tmp_path / "out", prefill_lo=1, prefill_hi=2, decode_lo=1, decode_hi=4, seeds=2)
    assert res.answer is not None
    p, d = res.answer
    t = res.table()
    assert list(t["prefill_replicas"]) == [1, 2]
    assert p + d == min(x for x in t["replicas"] if x == x)
    assert _meets(path, p, d, 3)                      # the answer meets the SLOs
    if d > 1:                                         # one decode replica fewer does not (for some seed)
        assert not (_meets(path, p, d - 1, 3) and _meets(path, p, d - 1, 4))


def test_plan_split_rejects_searched_keys(tmp_path):
    path = tmp_path / "split.toml"
    path.write_text(SCENARIO)
    with pytest.raises(InputError, match="searched"):
        plan_split(str(path), SLOS, tmp_path / "out", fixed={"disaggregation.decode_replicas": 2})
