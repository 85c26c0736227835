"""Host KV tier and prefix-aware routing: transfer arithmetic, block conservation across tiers,
the retention rules, and what offloading does to a run whose GPU KV is short."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from agentwatt.core.errors import InputError
from agentwatt.sim import kvtier
from agentwatt.sim.router import PrefixIndex, Router
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict


def _scenario(engine: dict, *, router: dict | None = None, replicas: int = 1, rate: float = 0.8,
              duration_s: float = 60.0, agent: str = "react-hotpotqa", seed: int = 1):
    return scenario_from_dict({"name": "tier", "run": {"seed": seed, "duration_s": duration_s, "drain_timeout_s": 600},
                               "fleet": {"replicas": replicas}, "engine": engine, "router": router or {},
                               "workload": [{"agent": agent, "rate_per_s": rate}]})


# ----------------------------------------------------------------------------- transfer arithmetic
def test_pcie_bandwidth_is_lanes_times_rate_times_encoding_times_achieved_share():
    for name, gt_per_s in (("pcie-gen3-x16", 8), ("pcie-gen4-x16", 16), ("pcie-gen5-x16", 32)):
        peak = 16 * gt_per_s * 128 / 130 / 8   # GB/s per direction
        assert kvtier.LINKS[name].gb_per_s == pytest.approx(0.8 * peak, rel=2e-3)


def test_transfer_time_is_bytes_over_bandwidth_plus_latency():
    gib = 2**30
    assert kvtier.transfer_s(gib, 25.2) == pytest.approx(gib / 25.2e9)
    assert kvtier.transfer_s(gib, 25.2, latency_s=1e-5) == pytest.approx(gib / 25.2e9 + 1e-5)
    assert kvtier.transfer_s(0, 25.2, latency_s=1.0) == 0.0
    # 1,000 blocks of 16 tokens of Llama-3.1-8B KV (128 KiB/token) over PCIe Gen4 x16: 2.1 GB in 83 ms
    nbytes = 1000 * 16 * 131072
    assert kvtier.transfer_s(nbytes, kvtier.LINKS["pcie-gen4-x16"].gb_per_s) == pytest.approx(0.0832, rel=1e-3)


def test_transfer_energy_is_bits_times_pj_per_bit():
    assert kvtier.transfer_energy_j(1e9, pj_per_bit=10.0) == pytest.approx(0.08)
    assert kvtier.transfer_energy_j(1e9) == pytest.approx(8e9 * (6.0 + 13.2) * 1e-12)


def test_breakeven_link_speed():
    # 128 KiB of KV per token, recomputed in 74 us: reloading wins above 1.77 GB/s
    assert kvtier.breakeven_gb_per_s(131072, 74e-6) == pytest.approx(1.771, rel=1e-3)


def test_link_queues_transfers_in_order():
    link = kvtier.Link(gb_per_s=1.0, latency_s=0.0)
    assert link.reserve(0.0, 1e9) == pytest.approx(1.0)
    assert link.reserve(0.5, 1e9) == pytest.approx(2.0)      # waits for the first
    assert link.reserve(5.0, 5e8) == pytest.approx(5.5)      # link idle: starts at once
    assert link.busy_s == pytest.approx(2.5)


def test_host_blocks_from_gib_per_gpu():
    # 64 GiB per GPU, tp 2, 2 MiB blocks -> 64 Ki blocks
    assert kvtier.host_blocks(64.0, 2, 2 * 2**20) == 65536


# ----------------------------------------------------------------------------- host tier and policy
def test_host_tier_lru_and_contiguous_match():
    h = kvtier.HostTier(3)
    assert h.store([1, 2, 3]) == 3
    assert h.match([1, 2, 3, 4], 0, 4) == 3
    assert h.match([9, 2, 3], 1, 3) == 2          # from ``start`` on
    h.match([1], 0, 1)                            # 1 now most recent: 2 is the LRU block
    assert h.store([4]) == 1
    assert 2 not in h.blocks and {1, 3, 4} == set(h.blocks)
    assert h.evicted == 1
    h.check()


@settings(max_examples=60, deadline=None)
@given(cap=st.integers(0, 8), ops=st.lists(st.lists(st.integers(0, 20), max_size=6), max_size=30))
def test_host_tier_conserves_blocks(cap, ops):
    """Every block stored is resident or was evicted; the tier never exceeds its capacity."""
    h = kvtier.HostTier(cap)
    for hashes in ops:
        h.store(hashes)
        h.check()
        assert h.used <= cap


def test_retention_choice_rules():
    kw = dict(tool_s=2.0, n_blocks=100, gpu_free_blocks=50, waiting=0, reload_s=0.1, host_capacity_blocks=1000)
    assert kvtier.retention_choice("offload", **kw) == "offload"
    assert kvtier.retention_choice("cost", **kw) == "offload"                            # GPU short
    assert kvtier.retention_choice("cost", **{**kw, "gpu_free_blocks": 100}) == "keep"   # GPU has room
    assert kvtier.retention_choice("cost", **{**kw, "gpu_free_blocks": 100, "waiting": 1}) == "offload"
    assert kvtier.retention_choice("cost", **{**kw, "tool_s": 0.05}) == "drop"          # reload outlasts tool
    assert kvtier.retention_choice("cost", **{**kw, "host_capacity_blocks": 99}) == "drop"   # host too small


# ----------------------------------------------------------------------------- whole runs
SHORT_KV = {"kv_capacity_tokens": 8000}


@pytest.fixture(scope="module")
def short_kv_runs():
    out = {}
    for name, eng in (("drop", {}), ("offload", {"kv_retention": "offload", "kv_host_gib_per_gpu": 64.0}),
                      ("prefetch", {"kv_retention": "offload", "kv_host_gib_per_gpu": 64.0, "kv_prefetch": True})):
        out[name] = run(_scenario({**SHORT_KV, **eng}))
    return out


def test_default_run_has_no_tier_or_router_block(short_kv_runs):
    assert "kv_tiers" not in short_kv_runs["drop"].summary
    assert "router" not in short_kv_runs["drop"].summary


def test_offload_saves_recompute_when_gpu_kv_is_short(short_kv_runs):
    drop, off = short_kv_runs["drop"].summary, short_kv_runs["offload"].summary
    t = off["kv_tiers"]
    assert t["host_hit_blocks"] > 0 and t["bytes_to_gpu"] > 0
    assert off["prefill_tokens_computed"] < 0.8 * drop["prefill_tokens_computed"]
    assert off["session_e2e_s"]["p99"] < drop["session_e2e_s"]["p99"]


def test_tokens_and_bytes_are_conserved_with_a_host_tier(short_kv_runs):
    for name in ("offload", "prefetch"):
        res = short_kv_runs[name]
        c = res.calls[(res.calls["status"] == "finished") & (res.calls["preemptions"] == 0)]
        assert ((c["cached_tokens"] + c["prefill_computed_tokens"]) == c["prompt_tokens"]).all()
        t = res.summary["kv_tiers"]
        block_bytes = 16 * res.profile.model.kv_bytes_per_token
        assert t["bytes_to_gpu"] == pytest.approx(t["host_hit_blocks"] * block_bytes)
        assert t["bytes_to_host"] >= t["host_stored_blocks"] * block_bytes - 1e-6 or t["spills"] > 0
        assert t["host_stored_blocks"] - t["host_evicted_blocks"] <= t["host_blocks_per_replica"]
        assert t["offload_energy_j"] == pytest.approx(kvtier.transfer_energy_j(t["bytes_to_host"] + t["bytes_to_gpu"]))


def test_prefetch_hides_the_load_behind_the_tool(short_kv_runs):
    assert short_kv_runs["offload"].summary["kv_tiers"]["load_wait_s_total"] > 0
    assert short_kv_runs["prefetch"].summary["kv_tiers"]["load_wait_s_total"] == 0.0


def test_slow_link_puts_more_load_time_on_the_critical_path():
    eng = {**SHORT_KV, "kv_retention": "offload", "kv_host_gib_per_gpu": 64.0}
    fast = run(_scenario({**eng, "kv_host_link": "nvlink-c2c"}, duration_s=30)).summary["kv_tiers"]
    slow = run(_scenario({**eng, "kv_host_link": "pcie-gen3-x16"}, duration_s=30)).summary["kv_tiers"]
    assert fast["loads"] > 0 and slow["loads"] > 0
    per_load = [t["load_wait_s_total"] / t["loads"] for t in (fast, slow)]
    assert per_load[1] > 10 * per_load[0]


def test_tier_runs_are_deterministic():
    eng = {**SHORT_KV, "kv_retention": "cost", "kv_host_gib_per_gpu": 16.0}
    a, b = run(_scenario(eng, duration_s=20)), run(_scenario(eng, duration_s=20))
    assert a.summary["kv_tiers"] == b.summary["kv_tiers"]
    assert a.calls.equals(b.calls)


@pytest.mark.parametrize("engine, router, msg", [
    ({"kv_retention": "offload", "prefix_caching": False}, {}, r"kv_retention = 'offload': expected prefix_caching"),
    ({"kv_host_link": "pcie-gen9"}, {}, r"\[engine\] kv_host_link = 'pcie-gen9': expected one of"),
    ({"kv_host_gib_per_gpu": 0}, {}, r"\[engine\] kv_host_gib_per_gpu = 0: expected a number > 0"),
])
def test_bad_tier_settings_name_the_field(engine, router, msg):
    with pytest.raises(InputError, match=msg):
        _scenario(engine, router=router)


def test_host_memory_beyond_the_server_is_refused():
    # DGX A100: 1 TB host memory / 8 GPUs = 128 GiB per GPU
    with pytest.raises(InputError, match=r"kv_host_gib_per_gpu = 200: expected at most 128 \(server 'dgx-a100'"):
        run(_scenario({"kv_retention": "offload", "kv_host_gib_per_gpu": 200.0}, duration_s=5))


# ----------------------------------------------------------------------------- prefix-aware routing
def test_prefix_index_finds_the_longest_prefix_and_forgets_lru():
    idx = PrefixIndex(capacity=5)
    idx.record([1, 2, 3], 0)
    idx.record([1, 2, 7], 1)        # shares 1, 2: held by replicas 0 and 1, 1 last
    assert idx.longest([1, 2, 3, 4]) == (3, {0: None})
    assert list(idx.longest([1, 2, 9])[1]) == [0, 1]
    assert idx.longest([8]) == (0, {})
    idx.record([10, 11], 2)         # 6 hashes > 5: the least recently routed (3) goes
    assert idx.longest([1, 2, 3])[0] == 2


class _Rep:
    def __init__(self, index: int, blocks: int = 100) -> None:
        from agentwatt.sim.batching import ReplicaState
        from agentwatt.sim.kv import BlockManager
        self.index = index
        self.outstanding = 0
        self.on_load = None
        self.state = ReplicaState(kv=BlockManager(blocks, 16), max_num_seqs=8, max_num_batched_tokens=64)


def test_prefix_aware_follows_the_prefix_within_the_imbalance_bound():
    reps = [_Rep(0), _Rep(1), _Rep(2)]
    router = Router(reps, "prefix_aware", session_affinity=False, prefix_max_imbalance=2)
    first = router.route(1, [11, 12, 13, 14])            # nothing indexed: least loaded (replica 0)
    assert first is reps[0]
    for load in (1, 2):
        reps[0].outstanding = load
        router.policy.update(0, load)
        assert router.route(2, [11, 12, 13, 99]) is reps[0]   # 3 of 4 blocks cached there, load within bound
    reps[0].outstanding = 3
    router.policy.update(0, 3)
    assert router.route(3, [11, 12, 13, 98]) is reps[1]       # 3 above the least loaded: refused
    assert router.route(4, [50, 51, 52, 53]) is reps[1]       # no prefix: least loaded
    s = router.prefix_summary()
    assert s["prefix_picks"] == 2 and s["imbalance_refusals"] == 1 and s["extra_load_max"] <= 2


def test_prefix_aware_routing_respects_the_bound_in_a_run():
    res = run(_scenario({}, router={"policy": "prefix_aware", "session_affinity": False, "prefix_max_imbalance": 1},
                        replicas=3, rate=3.0, duration_s=20))
    r = res.summary["router"]
    assert r["picks"] == len(res.calls) and r["prefix_picks"] > 0
    assert r["extra_load_max"] <= 1


def test_timeline_samples_the_host_tier():
    from agentwatt.sim.timeline import record_timeline
    tl = record_timeline(_scenario({**SHORT_KV, "kv_retention": "offload", "kv_host_gib_per_gpu": 1.0}, rate=2.0),
                         until_s=30.0, sample_s=0.5)
    host = tl.samples["host_kv_used_share"]
    assert host.between(0, 1).all() and host.iloc[-1] > 0
    assert host.is_monotonic_increasing   # blocks leave the host tier only to make room
    assert "host_kv_used_share" not in record_timeline(_scenario(SHORT_KV), until_s=5.0, sample_s=0.5).samples


def test_prefix_aware_routing_raises_the_hit_rate_over_affinity_with_shared_prompts():
    """Four prompt variants (four shared few-shot blocks) on four replicas too small to hold them
    all: following prefixes keeps each block on fewer replicas."""
    wl = [{"agent": "react-hotpotqa", "knobs": {"fewshot": f}, "rate_per_s": 0.5} for f in (4, 6, 8, 10)]

    def hit(router: dict) -> float:
        sc = scenario_from_dict({"name": "r", "run": {"seed": 1, "duration_s": 30, "drain_timeout_s": 600},
                                 "fleet": {"replicas": 4}, "engine": {"kv_capacity_tokens": 8000},
                                 "router": router, "workload": wl})
        return run(sc).summary["prefix_cache_hit_rate"]
    affinity = hit({})
    assert hit({"policy": "prefix_aware", "prefix_max_imbalance": 8}) > affinity + 0.1
    assert hit({"policy": "prefix_aware", "session_affinity": False, "prefix_max_imbalance": 8}) > affinity + 0.05


def test_prefix_aware_without_prefix_caching_routes_as_least_loaded():
    eng = {"prefix_caching": False}
    a = run(_scenario(eng, router={"policy": "prefix_aware", "session_affinity": False}, replicas=2, rate=2.0,
                      duration_s=10))
    b = run(_scenario(eng, router={"session_affinity": False}, replicas=2, rate=2.0, duration_s=10))
    assert a.calls.equals(b.calls)
    assert a.summary["router"]["prefix_picks"] == 0
