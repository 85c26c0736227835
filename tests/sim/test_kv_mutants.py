"""Behaviour of the KV block managers (sim/kv.py) that the mutation pass (benchmarks/mutation.py)
found untested: the counting manager, the queue's bookkeeping, the counters, the invariant check
and argument checks."""
import pytest

from agentwatt.sim.kv import BlockManager, CountingBlockManager
from agentwatt.traces.blocks import block_hashes
from agentwatt.traces.schema import Segment


def queue_entries(kv: BlockManager) -> int:
    """Entries in the free queue, stale ones included (what the compaction threshold counts)."""
    return sum(hi - lo for _, _, lo, hi in kv._segs)


@pytest.mark.parametrize("cls", [BlockManager, CountingBlockManager])
@pytest.mark.parametrize("n, bs", [(0, 16), (4, 0), (-1, -1)])
def test_a_pool_needs_a_block_and_a_block_a_token(cls, n, bs):
    with pytest.raises(ValueError):
        cls(n, bs)


@pytest.mark.parametrize("cls", [BlockManager, CountingBlockManager])
def test_counts_of_free_and_used_blocks(cls):
    kv = cls(10, 16)
    assert (kv.num_free, kv.num_used, kv.hits_blocks, kv.lookups_blocks) == (10, 0, 0, 0)
    assert kv.blocks_for(0) == 0 and kv.blocks_for(1) == 1 and kv.blocks_for(16) == 1 and kv.blocks_for(17) == 2
    a = kv.allocate(7)
    assert len(a) == 7 and (kv.num_free, kv.num_used) == (3, 7)
    assert kv.allocate(4) is None and kv.num_free == 3          # too few: nothing taken
    assert kv.allocate(0) == [] and kv.num_free == 3
    kv.release(a[:5])
    assert (kv.num_free, kv.num_used) == (8, 2)
    assert sum(kv.ref) == 2
    kv.check()


def test_counting_manager_has_no_prefix_cache():
    kv = CountingBlockManager(8, 16)
    assert kv.prefix_caching is False
    h = block_hashes([Segment("a", 64)], 16)
    b = kv.allocate(4)
    kv.register(b, h, 0, 4)
    kv.release(b)
    assert kv.match_prefix(h, 4) == [] and kv.cost_of([], 3) == 3 and kv.num_free == 8
    kv.take([])
    kv._free = 9
    with pytest.raises(AssertionError):
        kv.check()


def test_counting_and_tracking_managers_agree_without_prefix_caching():
    """The same allocate/release sequence leaves the same free counts in both managers."""
    a, b = BlockManager(64, 16, prefix_caching=False), CountingBlockManager(64, 16)
    held_a, held_b = [], []
    for i in range(40):
        n = (i * 7) % 9 + 1
        if i % 3 == 2 and held_a:
            a.release(held_a.pop(0))
            b.release(held_b.pop(0))
        else:
            ra, rb = a.allocate(n), b.allocate(n)
            assert (ra is None) == (rb is None)
            if ra is not None:
                held_a.append(ra)
                held_b.append(rb)
        assert a.num_free == b.num_free and a.num_used == b.num_used
    a.check()
    b.check()


def test_queue_entry_count_matches_the_queue():
    """``_entries`` (which triggers compaction) counts the free queue's entries, stale included,
    through takes that shrink a run's end, allocations and releases."""
    kv = BlockManager(32, 16)
    h = block_hashes([Segment("p", 16 * 6)], 16)
    b = kv.allocate(6)
    kv.register(b, h, 0, 6)
    kv.release(b)
    assert kv._entries == queue_entries(kv) == 32
    for i in range(6):
        hit = kv.match_prefix(h, 6 - i % 3)
        assert hit == b[:6 - i % 3]
        kv.take(hit)
        assert kv._entries == queue_entries(kv)
        extra = kv.allocate(3)
        assert kv._entries == queue_entries(kv)
        kv.release(extra)
        kv.release(hit)
        assert kv._entries == queue_entries(kv)
        kv.check()


def test_check_finds_each_kind_of_corruption():
    kv = BlockManager(4, 16)
    h = block_hashes([Segment("a", 32)], 16)
    b = kv.allocate(2)
    kv.register(b, h, 0, 2)
    kv.check()
    kv._free += 1                    # the counter disagrees with the refcounts
    with pytest.raises(AssertionError, match="counter says"):
        kv.check()
    kv._free -= 1
    kv.ref[b[0]] = -1                # a negative refcount
    with pytest.raises(AssertionError, match="negative refcount"):
        kv.check()
    kv.ref[b[0]] = 1
    kv.cached[h[0]] = b[1]           # the cache maps a hash to a block holding another
    with pytest.raises(AssertionError, match="holds another"):
        kv.check()


def test_a_stale_entry_is_skipped_when_allocating():
    """A cached block taken from the middle of the free queue and freed again has a stale entry at
    its old place: allocation skips it, so the block keeps its new (later) place in LRU order."""
    kv = BlockManager(4, 16)
    hs = [block_hashes([Segment(k, 16)], 16) for k in "ABCD"]
    blocks = kv.allocate(4)
    for b, h in zip(blocks, hs):
        kv.register([b], h, 0, 1)
    kv.release(blocks)                     # tail first: 3, 2, 1, 0
    hit = kv.match_prefix(hs[2], 1)
    assert hit == [2]
    kv.take(hit)
    kv.release(hit)                        # 2 goes to the back; its old entry is stale
    assert kv.free_order() == [3, 1, 0, 2]
    assert kv.allocate(2) == [3, 1]
    kv.check()


def test_compaction_keeps_every_free_block_in_order():
    kv = BlockManager(8, 16)
    hs = [block_hashes([Segment(k, 16)], 16) for k in "ABCDEFGH"]
    blocks = kv.allocate(8)
    for b, h in zip(blocks, hs):
        kv.register([b], h, 0, 1)
    kv.release(blocks)
    for k in (5, 2, 6):                    # take from the middle and free again: stale entries
        hit = kv.match_prefix(hs[k], 1)
        kv.take(hit)
        kv.release(hit)
    before = kv.free_order()
    assert queue_entries(kv) > len(before) == 8
    kv._compact()
    assert kv.free_order() == before and queue_entries(kv) == kv._entries == 8
    kv.check()


def test_counting_check_accepts_an_empty_and_a_full_pool():
    kv = CountingBlockManager(4, 16)
    kv.check()                             # all 4 free
    kv.allocate(4)
    kv.check()                             # none free
    assert kv.allocate(1) is None
