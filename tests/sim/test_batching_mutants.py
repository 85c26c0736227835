"""Step composition (sim/batching.py) cases the mutation pass found untested: pins dropped under
memory pressure (oldest first), a call dropped mid-generation, the step's latency features, the
batch limits, and k decode steps in one event equal to k single steps."""
import copy

import pytest

from agentwatt.sim.batching import (Request, ReplicaState, advance_decode, complete, decode_run_length, pin,
                                    schedule, unpin)
from agentwatt.sim.kv import BlockManager


def req(rid, prompt, out):
    return Request(rid, prompt, out, [], 0.0)


def state(blocks=100, seqs=8, budget=512):
    return ReplicaState(kv=BlockManager(blocks, 16), max_num_seqs=seqs, max_num_batched_tokens=budget)


def test_pins_are_dropped_oldest_first_and_only_as_far_as_needed():
    st = state(blocks=10)
    old = pin(st, st.kv.allocate(3))
    new = pin(st, st.kv.allocate(3))
    r = req(0, 80, 2)                      # 5 blocks, 4 free
    st.waiting.append(r)
    plan = schedule(st)
    assert list(st.pins) == [new] and st.unpinned_for_memory == 1
    assert plan.items == [(r, 80)] and len(r.blocks) == 5 and st.kv.num_free == 2
    unpin(st, old)                         # gone already: a no-op
    unpin(st, new)
    unpin(st, None)
    assert st.kv.num_free == 5 and not st.pins


def test_a_call_that_outgrows_the_cache_is_dropped_mid_generation():
    st = state(blocks=4)                   # 64 tokens
    r = req(0, 60, 10)
    st.waiting.append(r)
    dropped = []
    for t in range(1, 30):
        plan = schedule(st)
        dropped += plan.dropped
        if dropped:
            break
        complete(st, plan, float(t))
    assert dropped == [r] and r.finish_s is None and r.first_token_s == 1.0
    assert r.num_generated == 5 and r.preemptions == 1 and not st.waiting and not st.running
    assert st.kv.num_free == 4
    st.kv.check()


def test_step_features_of_a_mixed_batch():
    st = state(budget=100)
    a, b = req(0, 30, 3), req(1, 200, 2)
    st.waiting.extend([a, b])
    p = schedule(st)                       # a's 30 prompt tokens, then 70 of b's
    assert p.items == [(a, 30), (b, 70)] and p.tokens == 100
    assert (p.prefill_tokens, p.prefill_attn, p.decode_seqs, p.decode_ctx) == (100, 30 * 30 + 70 * 70, 0, 0)
    assert complete(st, p, 1.0) == [] and a.num_generated == 1 and b.num_generated == 0
    p = schedule(st)                       # a decodes (context 31), b's next 99 tokens
    assert p.items == [(a, 1), (b, 99)]
    assert (p.prefill_tokens, p.prefill_attn, p.decode_seqs, p.decode_ctx) == (99, 99 * (70 + 99), 1, 31)
    complete(st, p, 2.0)
    p = schedule(st)
    assert p.items == [(a, 1), (b, 31)] and p.decode_ctx == 32
    done = complete(st, p, 3.0)
    assert done == [a] and a.finish_s == 3.0 and b.first_token_s == 3.0 and st.running == [b]
    assert a.blocks == [] and a.prefill_computed == 30 and b.prefill_computed == 200


def test_batch_limits_max_num_seqs_and_budget():
    st = state(seqs=2, budget=64)
    rs = [req(i, 10, 5) for i in range(4)]
    st.waiting.extend(rs)
    p = schedule(st)
    assert [r for r, _ in p.items] == rs[:2] and len(st.waiting) == 2
    st2 = state(budget=16)
    st2.waiting.extend([req(0, 10, 5), req(1, 10, 5)])
    p = schedule(st2)
    assert [n for _, n in p.items] == [10, 6] and p.tokens == 16


def test_k_decode_steps_in_one_event_equal_k_single_steps():
    st = state()
    rs = [req(i, 20 + 7 * i, 9 + i) for i in range(3)]
    st.waiting.extend(rs)
    complete(st, schedule(st), 1.0)        # prefill: each has its first token
    twin = copy.deepcopy(st)
    plan = schedule(st)
    k = decode_run_length(st, plan)
    assert k == 8                          # the shortest output has 9 - 1 tokens left
    done = advance_decode(st, plan, k, 9.0)
    t = 1.0
    for _ in range(k):
        t += 1.0
        p = schedule(twin)
        last = complete(twin, p, t)
    assert [r.rid for r in done] == [r.rid for r in last] == [0]
    for a, b in zip(sorted(st.running, key=lambda r: r.rid), sorted(twin.running, key=lambda r: r.rid)):
        assert (a.num_generated, a.num_computed, len(a.blocks)) == (b.num_generated, b.num_computed, len(b.blocks))
    assert st.kv.num_free == twin.kv.num_free


def test_no_run_of_decode_steps_while_someone_waits_or_prefills():
    st = state()
    st.waiting.append(req(0, 20, 9))
    plan = schedule(st)
    assert decode_run_length(st, plan) == 1          # a prefill step
    complete(st, plan, 1.0)
    st.waiting.append(req(1, 20, 9))
    plan = schedule(st)
    assert decode_run_length(st, plan) == 1          # b was admitted into this step
    complete(st, plan, 2.0)
    plan = schedule(st)
    assert decode_run_length(st, plan) == 7          # a: 9 - 2 generated; b: 9 - 1
    st.waiting.append(req(2, 20, 9))
    assert decode_run_length(st, plan) == 1          # someone waits


def test_shrinks_a_decode_run_to_the_blocks_free():
    st = state(blocks=3)                   # 48 tokens
    r = req(0, 16, 40)
    st.waiting.append(r)
    complete(st, schedule(st), 1.0)        # 16 prompt tokens: one block, first token out
    plan = schedule(st)                    # its decode needs a second block: one left free
    assert len(r.blocks) == 2 and st.kv.num_free == 1
    # 39 more tokens would need 4 blocks; halving: 19 steps need blocks_for(17 + 19 - 1) = 3 (one more)
    assert decode_run_length(st, plan) == 19


def test_a_readmitted_request_whose_context_is_cached_decodes_at_once():
    """After a preemption, a request whose whole context but the last token is in the prefix cache
    is re-admitted straight into decode: one decode sequence of context 33, no prefill."""
    from agentwatt.traces.blocks import block_hashes
    from agentwatt.traces.schema import Segment
    st = state()
    h = block_hashes([Segment("p", 48)], 16)
    b = st.kv.allocate(2)
    st.kv.register(b, h, 0, 2)
    st.kv.release(b)
    r = Request(0, 32, 5, h, 0.0)
    r.num_generated = 1                    # as if preempted after its first token
    st.waiting.append(r)
    p = schedule(st)
    assert p.items == [(r, 1)] and r.num_computed == 32
    assert (p.decode_seqs, p.decode_ctx, p.prefill_tokens, p.prefill_attn) == (1, 33, 0, 0)


def test_budget_edges_zero_and_one_token_left():
    st = state(budget=16)
    st.waiting.extend([req(0, 10, 5), req(1, 10, 5), req(2, 10, 5)])
    p = schedule(st)
    assert [n for _, n in p.items] == [10, 6] and len(st.waiting) == 1   # no budget: the third waits
    st = state(budget=21)
    st.waiting.extend([req(0, 10, 5), req(1, 10, 5), req(2, 10, 5)])
    assert [n for _, n in schedule(st).items] == [10, 10, 1]              # one token left: used
    st = state(budget=2)
    a, b = req(0, 1, 5), req(1, 1, 5)
    st.waiting.extend([a, b])
    complete(st, schedule(st), 1.0)
    p = schedule(st)                       # two running decodes, a budget of two tokens
    assert p.items == [(a, 1), (b, 1)] and p.decode_seqs == 2


def test_preemptions_are_counted_in_the_plan():
    st = state(blocks=4)
    r = req(0, 60, 10)
    st.waiting.append(r)
    preempted = 0
    for t in range(1, 30):
        plan = schedule(st)
        preempted += plan.preempted
        if plan.dropped:
            break
        complete(st, plan, float(t))
    assert preempted == r.preemptions == 1


def test_unpinning_that_frees_exactly_enough_admits_the_request():
    st = state(blocks=10)
    pin(st, st.kv.allocate(6))
    r = req(0, 160, 2)                     # 10 blocks: all of them, once the pin is dropped
    st.waiting.append(r)
    p = schedule(st)
    assert p.items == [(r, 160)] and not st.pins and st.kv.num_free == 0
