"""Routers (sim/router.py): the least-loaded router's min-tree kept current by the replicas' load
callbacks (submit, finish, drop), ties to the lowest index, and session affinity."""
from __future__ import annotations

import random
from dataclasses import replace
from types import SimpleNamespace

import pytest
import simpy

from agentwatt.core.errors import InputError
from agentwatt.core.profile import LatencyModel, PowerModel, load_profile
from agentwatt.sim.batching import Request
from agentwatt.sim.replica import Replica
from agentwatt.sim.router import LeastLoaded, Router


def fake_replicas(n: int):
    return [SimpleNamespace(index=i, outstanding=0, on_load=None) for i in range(n)]


def test_least_loaded_registers_its_callback_and_breaks_ties_by_index():
    reps = fake_replicas(5)
    ll = LeastLoaded(reps)
    assert all(r.on_load == ll.update for r in reps)
    assert ll.pick().index == 0
    reps[0].on_load(0, 2)
    reps[1].on_load(1, 1)
    assert ll.pick().index == 2              # 2, 3, 4 tie at 0: the lowest index
    for i in (2, 3, 4):
        reps[i].on_load(i, 1)
    assert ll.pick().index == 1              # 1..4 tie at 1
    reps[1].on_load(1, 3)
    assert ll.pick().index == 2
    reps[0].on_load(0, 0)
    assert ll.pick().index == 0


def test_least_loaded_starts_from_the_replicas_current_loads():
    reps = fake_replicas(3)
    reps[0].outstanding, reps[1].outstanding, reps[2].outstanding = 4, 2, 2
    assert LeastLoaded(reps).pick().index == 1


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_min_tree_matches_a_scan_after_random_updates(n):
    rng = random.Random(n)
    reps = fake_replicas(n)
    ll = LeastLoaded(reps)
    loads = [0] * n
    for _ in range(500):
        i = rng.randrange(n)
        loads[i] = rng.randrange(6)
        reps[i].on_load(i, loads[i])
        assert ll.pick().index == min(range(n), key=lambda j: (loads[j], j))


def _profile():
    p = load_profile("llama-3.1-8b_a100-40gb")
    return replace(p, latency=LatencyModel(overhead_s=0.01, prefill_token_s=0.001, prefill_attn_s=0.0,
                                           decode_seq_s=0.002, decode_ctx_s=0.0),
                   power=PowerModel(available=False, source="none", reason="test"))


def test_replicas_report_their_outstanding_counts_on_submit_finish_and_drop():
    env = simpy.Environment()
    prof = _profile()
    reps = [Replica(env, i, prof, num_blocks=16, block_size=16, max_num_seqs=4, max_num_batched_tokens=512,
                    prefix_caching=False, resolution_s=1.0) for i in range(3)]
    router = Router(reps, "least_loaded", session_affinity=False)
    seen: list[tuple[int, int]] = []
    for r in reps:                           # spy on the callback the router registered
        cb = r.on_load
        r.on_load = lambda i, n, cb=cb: (seen.append((i, n)), cb(i, n))
    picks = []

    def submit(rid, prompt, output):
        rep = router.route(rid)
        picks.append(rep.index)
        rep.submit(Request(rid, prompt, output, [], env.now, done=env.event()))

    for rid in range(4):                     # 0, 1, 2 get one each; the 4th goes to 0 again (tie)
        submit(rid, 20, 3)
    assert picks == [0, 1, 2, 0]
    assert seen == [(0, 1), (1, 1), (2, 1), (0, 2)]
    seen.clear()
    env.run(until=1.0)
    assert seen == [(1, 0), (2, 0), (0, 0)]  # 0's two calls finish in one step, after the others' (bigger batch)
    assert all(r.outstanding == 0 for r in reps) and router.policy.pick().index == 0
    seen.clear()
    big = 16 * 16 + 1                        # more than the KV cache of a replica: dropped
    submit(9, big, 1)
    env.run(until=2.0)
    assert seen == [(0, 1), (0, 0)] and router.policy.pick().index == 0


def test_session_affinity_keeps_a_session_on_its_replica_until_forgotten():
    router = Router(fake_replicas(3), "round_robin", session_affinity=True)
    a = router.route(10)
    b = router.route(11)
    assert a.index == 0 and b.index == 1 and router.route(10) is a
    router.forget(10)
    assert router.route(10).index == 2


def test_unknown_policy_lists_the_valid_ones():
    with pytest.raises(InputError, match="least_loaded"):
        Router(fake_replicas(1), "random", session_affinity=False)
