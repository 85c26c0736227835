"""Pure model code: block hashes, block manager, step composition (no SimPy)."""
from agentwatt.sim.batching import ReplicaState, Request, complete, schedule
from agentwatt.sim.kv import BlockManager
from agentwatt.traces.blocks import block_hashes
from agentwatt.traces.schema import Segment


def test_block_hashes_share_prefix_and_differ_after():
    a = block_hashes([Segment("sys", 40), Segment("q1", 30)], 16)
    b = block_hashes([Segment("sys", 40), Segment("q2", 30)], 16)
    assert len(a) == len(b) == 70 // 16
    assert a[:2] == b[:2]          # blocks 0,1 lie inside "sys"
    assert a[2] != b[2]            # block 2 spans sys[32:40] + q[0:8]
    # a block's hash chains all earlier content: equal content after a different prefix differs
    c = block_hashes([Segment("sys2", 40), Segment("q1", 30)], 16)
    assert c[3] != a[3] and block_hashes([Segment("x", 32)], 16) != block_hashes([Segment("y", 32)], 16)
    # hashed in pieces (the session's incremental path: the previous call's state, copied, extended)
    # or at once: the same hashes; extending a copy leaves the original as it was
    from agentwatt.traces.blocks import BlockHasher
    head = BlockHasher(16).extend([Segment("sys", 40)])
    whole = head.copy().extend([Segment("q1", 30)])
    assert whole.hashes == a and head.hashes == a[:2] and head.fill == 8
    assert BlockHasher(16).extend([Segment("sys", 40), Segment("q1", 3)]).extend([Segment("q1x", 27)]).hashes \
        != a   # what follows the open block is part of its content


def test_prefix_hit_and_lru_eviction():
    kv = BlockManager(num_blocks=4, block_size=16)
    h = block_hashes([Segment("a", 64)], 16)
    blocks = kv.allocate(4)
    kv.register(blocks, h, 0, 4)
    kv.release(blocks)
    assert kv.num_free == 4
    hit = kv.match_prefix(h, 4)
    assert hit == blocks
    # released tail-first: allocating one block evicts the tail block (index 3) first
    b = kv.allocate(1)
    assert b == [blocks[3]]
    assert kv.match_prefix(h, 4) == blocks[:3]
    kv.check()


def test_uncached_blocks_evicted_before_cached():
    kv = BlockManager(num_blocks=3, block_size=16)
    h = block_hashes([Segment("a", 16)], 16)
    cached = kv.allocate(1)
    kv.register(cached, h, 0, 1)
    junk = kv.allocate(1)
    kv.release(cached)
    kv.release(junk)
    # uncached (worthless) blocks go to the front of the free queue, cached ones to the back
    assert kv.free_order() == [junk[0], 2, cached[0]]
    assert kv.allocate(1) == junk
    assert kv.allocate(1) == [2] and kv.match_prefix(h, 1) == cached   # the cached block is evicted last
    assert kv.allocate(1) == cached and kv.match_prefix(h, 1) == []


def _req(rid, prompt, out, hashes=()):
    return Request(rid, prompt, out, list(hashes), 0.0)


def test_chunked_prefill_respects_token_budget_and_decodes():
    st = ReplicaState(kv=BlockManager(1000, 16), max_num_seqs=8, max_num_batched_tokens=100)
    r = _req(0, 250, 3)
    st.waiting.append(r)
    chunks = []
    now = 0.0
    while True:
        plan = schedule(st)
        assert plan.tokens <= 100
        chunks.append((plan.prefill_tokens, plan.decode_seqs))
        now += 1
        if complete(st, plan, now):
            break
    # 250 prompt tokens in chunks of 100, 100, 50 (first token), then 2 decode steps
    assert chunks == [(100, 0), (100, 0), (50, 0), (0, 1), (0, 1)]
    assert r.first_token_s == 3 and r.finish_s == 5 and r.num_generated == 3
    assert st.kv.num_free == 1000


def test_preemption_by_recompute_when_kv_runs_out():
    # 4 blocks of 16 tokens; two requests each needing 2+ blocks as they grow
    st = ReplicaState(kv=BlockManager(4, 16), max_num_seqs=8, max_num_batched_tokens=1000)
    a, b = _req(0, 30, 20), _req(1, 30, 20)
    st.waiting.extend([a, b])
    now, done = 0.0, []
    for _ in range(200):
        plan = schedule(st)
        if not plan.items:
            break
        now += 1
        done += complete(st, plan, now)
        st.kv.check()
    assert {r.rid for r in done} == {0, 1}
    assert a.preemptions + b.preemptions >= 1
    assert all(r.num_generated == 20 for r in done)
    assert st.kv.num_free == 4


def test_request_too_large_for_kv_is_dropped():
    st = ReplicaState(kv=BlockManager(2, 16), max_num_seqs=8, max_num_batched_tokens=1000)
    st.waiting.append(_req(0, 100, 5))
    plan = schedule(st)
    assert [r.rid for r in plan.dropped] == [0] and not plan.items


def test_prefix_hit_skips_computed_tokens():
    st = ReplicaState(kv=BlockManager(100, 16), max_num_seqs=8, max_num_batched_tokens=4096)
    segs = [Segment("sys", 64), Segment("q", 10)]
    first = _req(0, 74, 2, block_hashes([*segs, Segment("o", 2)], 16))
    st.waiting.append(first)
    while not complete(st, schedule(st), 1.0):
        pass
    second = _req(1, 80, 2, block_hashes([*segs, Segment("o", 2), Segment("t", 4), Segment("o2", 2)], 16))
    st.waiting.append(second)
    plan = schedule(st)
    assert second.cached_tokens == 64           # 4 full blocks of "sys"; the 5th block differs
    assert plan.prefill_tokens == 80 - 64


def test_least_loaded_tree_picks_what_a_scan_picks():
    """The router's min-tree gives the replica a full scan would (fewest outstanding, lowest index)."""
    import random

    from agentwatt.sim.router import LeastLoaded

    class Rep:
        def __init__(self, i):
            self.index, self.outstanding, self.on_load = i, 0, None

    rng = random.Random(7)
    for n in (1, 2, 3, 7, 8, 33):
        reps = [Rep(i) for i in range(n)]
        pol = LeastLoaded(reps)
        for _ in range(500):
            r = reps[rng.randrange(n)]
            r.outstanding = max(0, r.outstanding + rng.choice((-1, 1, 1)))
            r.on_load(r.index, r.outstanding)
            assert pol.pick() is min(reps, key=lambda x: (x.outstanding, x.index))
