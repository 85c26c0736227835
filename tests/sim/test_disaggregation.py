"""Prefill/decode disaggregation ([disaggregation], sim/disagg.py): every call prefilled once in the
prefill pool, its KV moved once, decoded once in the decode pool; transfer time = bytes / link
bandwidth on the critical path; per-pool energy adds up to the fleet's; bad tables are one-line errors."""
import numpy as np
import pandas as pd
import pytest

from agentwatt.core.errors import InputError
from agentwatt.core.profile import load_profile
from agentwatt.sim.disagg import LINKS, transfer_seconds
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict

BASE = {"name": "pd", "profile": "llama-3.1-8b_a100-40gb",
        "run": {"seed": 4, "duration_s": 60.0, "drain_timeout_s": 300.0},
        "disaggregation": {"prefill_replicas": 1, "decode_replicas": 2},
        "workload": [{"mix": {"react-hotpotqa": 0.5, "chatbot-sharegpt": 0.5}, "rate_per_s": 2.0}]}


def _scenario(**over):
    d = {**BASE, **over}
    return scenario_from_dict(d, "disagg-test")


@pytest.fixture(scope="module")
def pd_run():
    return run(_scenario())


def test_transfer_time_is_kv_bytes_over_link_bandwidth():
    m = load_profile("llama-3.1-8b_a100-40gb").model
    assert m.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2          # Llama-3.1-8B, bf16: 128 KiB a token
    # 1,000 tokens = 131 MB over InfiniBand NDR (400 Gb/s = 50 GB/s): 2.6 ms
    assert transfer_seconds(1000, m.kv_bytes_per_token, 1, LINKS["infiniband-ndr"]) == pytest.approx(131072e3 / 50e9)
    assert LINKS["infiniband-ndr"] == 400 / 8
    assert transfer_seconds(1000, 131072, 2, 50.0) == pytest.approx(131072e3 / 100e9)   # tp links in parallel
    assert transfer_seconds(1000, 131072, 1, 50.0, latency_s=1e-3) == pytest.approx(1e-3 + 131072e3 / 50e9)
    assert transfer_seconds(1000, 131072, 1, 50.0, overlap_layers=32) == pytest.approx(131072e3 / 50e9 / 32)


def test_each_call_prefilled_once_moved_once_decoded_once(pd_run):
    calls, t, s = pd_run.calls, pd_run.transfers, pd_run.summary
    fin = calls[calls["status"] == "finished"]
    assert len(fin) == s["calls_submitted"] and len(fin) > 50
    multi = fin[fin["output_tokens"] > 1]
    keys = list(zip(t["session_id"], t["node_id"]))
    assert len(keys) == len(set(keys)) == len(multi)                           # moved once
    assert set(keys) == set(zip(multi["session_id"], multi["node_id"]))
    d = s["disaggregation"]
    assert (t["prefill_replica"] < 1).all() and (t["decode_replica"] >= 1).all()
    assert (fin["replica"] < 1).all()                                          # prefilled in the prefill pool
    assert d["prefill"]["decode_tokens"] == 0                                  # the prefill pool never decodes
    assert d["decode"]["prefill_tokens"] == 0                                  # nor the decode pool prefills
    assert d["prefill"]["prefill_tokens"] == int(fin["prefill_computed_tokens"].sum())
    assert d["decode"]["decode_tokens"] == int((multi["output_tokens"] - 1).sum())  # decoded once
    assert s["output_tokens"] == d["decode"]["decode_tokens"] + len(fin)       # + the first tokens
    assert d["kv_transfers"] == len(t)
    assert d["kv_bytes_transferred"] == pytest.approx(float((t["tokens"] * 131072).sum()))


def test_transfers_take_bytes_over_bandwidth_on_the_critical_path(pd_run):
    t = pd_run.transfers
    np.testing.assert_allclose(t["transfer_s"], t["kv_bytes"] / 50e9, rtol=1e-12)
    # a 0.1 GB/s link: a 1,000-token prompt takes 1.3 s, longer than decoding most answers
    slow = run(_scenario(disaggregation={**BASE["disaggregation"], "link_gb_per_s": 0.1}))
    t = slow.transfers
    np.testing.assert_allclose(t["transfer_s"], t["kv_bytes"] / 0.1e9, rtol=1e-12)
    assert (t["start_s"] >= t["ready_s"]).all()
    m = slow.calls.merge(t, on=["session_id", "node_id"], suffixes=("_call", ""))   # start_s: the transfer's
    # the second token comes after the first, the link wait and the transfer
    assert (m["finish_s"] >= m["first_token_s"] + (m["start_s"] - m["ready_s"]) + m["transfer_s"] - 1e-9).all()
    assert (m["ready_s"] == m["first_token_s"]).all()


def test_a_slow_link_slows_decode():
    fast = run(_scenario()).summary
    slow = run(_scenario(disaggregation={**BASE["disaggregation"], "link_gb_per_s": 0.2})).summary
    assert slow["tpot_s"]["mean"] > fast["tpot_s"]["mean"] * 1.5
    overlap = run(_scenario(disaggregation={**BASE["disaggregation"], "link_gb_per_s": 0.2,
                                            "layer_overlap": True}))
    t = overlap.transfers      # only the last of 32 layers' share is exposed
    np.testing.assert_allclose(t["transfer_s"], t["kv_bytes"] / 0.2e9 / 32, rtol=1e-12)
    assert overlap.summary["tpot_s"]["mean"] < slow["tpot_s"]["mean"]


def test_pool_energy_adds_up_to_the_fleet(pd_run):
    s = pd_run.summary
    d = s["disaggregation"]
    assert d["prefill"]["gpu_energy_j"] + d["decode"]["gpu_energy_j"] == pytest.approx(s["gpu_energy_j"], rel=1e-8)
    assert s["gpus"] == 3 and d["prefill"]["gpus"] + d["decode"]["gpus"] == 3


def test_splitwise_h100_prefill_a100_decode():
    res = run(_scenario(disaggregation={**BASE["disaggregation"], "prefill_profile": "llama-3.1-8b_h100"}))
    d = res.summary["disaggregation"]
    assert d["prefill"]["profile"] == "llama-3.1-8b_h100" and d["decode"]["profile"] == "llama-3.1-8b_a100-40gb"
    assert res.summary["sessions_completed"] == res.summary["sessions_arrived"]
    e = res.summary["facility_energy_j"]
    assert np.isfinite(e) and e > res.summary["gpu_energy_j"]


def test_decode_side_preemption_recomputes_and_conserves():
    res = run(_scenario(engine={"kv_capacity_tokens": 12_000},
                        workload=[{"agent": "react-hotpotqa", "rate_per_s": 4.0}]))
    s, d = res.summary, res.summary["disaggregation"]
    fin = res.calls[res.calls["status"] == "finished"]
    assert s["calls_submitted"] == s["calls_completed"] + s["calls_dropped"] + s["calls_in_flight"]
    assert d["decode"]["preemptions"] > 0 and d["decode"]["prefill_tokens"] > 0     # recomputed on the decode side
    assert d["decode"]["prefill_tokens"] + d["prefill"]["prefill_tokens"] == int(fin["prefill_computed_tokens"].sum())
    # a recompute's last prompt chunk also yields the next token (vLLM): at most one per decode-side preemption
    extra = s["output_tokens"] - d["decode"]["decode_tokens"] - len(fin)
    assert 0 < extra <= d["decode"]["preemptions"]


def test_deterministic(pd_run):
    again = run(_scenario())
    pd.testing.assert_frame_equal(pd_run.calls, again.calls)
    pd.testing.assert_frame_equal(pd_run.transfers, again.transfers)


@pytest.mark.parametrize("table, extra, expected", [
    ({"decode_replicas": 2}, {}, r"\[disaggregation\] prefill_replicas missing"),
    ({"prefill_replicas": 1, "decode_replicas": 2, "link": "carrier-pigeon"}, {}, r"\[disaggregation\] link = "),
    ({"prefill_replicas": 1, "decode_replicas": 2}, {"fleet": {"replicas": 4}},
     r"\[fleet\] replicas = 4: expected 3"),
    ({"prefill_replicas": 1, "decode_replicas": 2}, {"fleet": {"spare_replicas": 1}},
     r"\[disaggregation\] with \[fleet\] spare_replicas"),
    ({"prefill_replicas": 1, "decode_replicas": 3}, {"autoscale": {"target_per_replica": 4, "min_replicas": 2}},
     r"\[autoscale\] min_replicas = 2: expected an integer >= 1 and <= 1"),
    ({"prefill_replicas": 0, "decode_replicas": 2}, {}, r"\[disaggregation\] prefill_replicas = 0"),
    ({"prefill_replicas": 1, "decode_replicas": 1, "bandwidth": 3}, {}, r"unknown key 'bandwidth'"),
])
def test_bad_tables_name_the_field(table, extra, expected):
    with pytest.raises(InputError, match=expected):
        _scenario(disaggregation=table, **extra)


def test_pools_need_the_same_tp():
    with pytest.raises(InputError, match=r"\[disaggregation\] profile llama-3.1-70b_4xh100: tp = 4"):
        run(_scenario(disaggregation={**BASE["disaggregation"], "decode_profile": "llama-3.1-70b_4xh100"}))


def test_scenario_round_trips_and_takes_pool_overrides():
    from agentwatt import load_scenario, scenario_to_dict
    sc = _scenario(disaggregation={"prefill_replicas": 2, "decode_replicas": 1, "prefill_profile": "llama-3.1-8b_h100",
                                   "layer_overlap": True})
    assert scenario_from_dict(scenario_to_dict(sc), sc.source) == sc
    bigger = load_scenario(sc, {"disaggregation.decode_replicas": 3})   # as a plan over the decode pool does
    assert bigger.disaggregation.decode_replicas == 3 and bigger.fleet.replicas == 5


def test_autoscaled_pools_conserve_calls_and_stay_within_each_pool():
    """[autoscale] with [disaggregation]: each pool scaled on its own, the conservation of the static
    pools still holds, and calls reach only ready replicas of either pool."""
    res = run(_scenario(disaggregation={"prefill_replicas": 2, "decode_replicas": 3},
                        autoscale={"target_per_replica": 6, "interval_s": 5, "scale_down_delay_s": 30},
                        workload=[{"agent": "react-hotpotqa", "arrival": "mmpp",
                                   "arrival_params": {"rates_per_s": [0.3, 4.0], "mean_sojourn_s": [60.0, 60.0]}}],
                        run={**BASE["run"], "duration_s": 300.0}))
    s, a, df = res.summary, res.summary["autoscale"], res.scaling
    assert set(a) == {"prefill", "decode"} and a["decode"]["starts"] >= 1
    for pool, size in (("prefill", 2), ("decode", 3)):
        p = df[df["pool"] == pool]
        assert (p["ready"] >= 1).all() and ((p["ready"] + p["warming"]) <= size).all()
        assert (p[["ready", "warming", "draining", "stopped"]].sum(axis=1) == size).all()
    fin = res.calls[res.calls["status"] == "finished"]
    assert len(fin) == s["calls_submitted"]
    t = res.transfers
    assert len(t) == int((fin["output_tokens"] > 1).sum())
    d = s["disaggregation"]
    assert d["prefill"]["decode_tokens"] == 0
    assert s["output_tokens"] - d["decode"]["decode_tokens"] - len(fin) <= d["decode"]["preemptions"]
    st = res.replica_states.sort_values("time_s", kind="stable")
    routed = t.assign(routed_s=t["start_s"] + t["transfer_s"]).rename(columns={"decode_replica": "replica"})
    at = pd.merge_asof(routed.sort_values("routed_s"), st, left_on="routed_s", right_on="time_s", by="replica",
                       direction="backward")
    assert (at["state"] == "ready").all()                          # decode replicas picked only when ready


def test_disaggregation_with_a_host_kv_tier_is_refused():
    from agentwatt.core.errors import InputError
    from agentwatt.sim.scenario import scenario_from_dict
    d = {"name": "x", "profile": "llama-3.1-8b_a100-40gb",
         "engine": {"kv_retention": "offload", "prefix_caching": True},
         "disaggregation": {"prefill_replicas": 1, "decode_replicas": 1},
         "workload": [{"agent": "react-hotpotqa", "rate_per_s": 0.5}]}
    with pytest.raises(InputError, match="kv_retention = 'offload'.*not modelled"):
        scenario_from_dict(d, where="t.toml")
