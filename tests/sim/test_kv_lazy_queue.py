"""The run-based, lazy free queue of ``BlockManager`` behaves exactly like a per-block LRU dict.

``ReferenceBlockManager`` is the straightforward model (an ``OrderedDict`` as the free queue,
eager bookkeeping: the simulator's earlier implementation); random operation sequences must give
the same blocks, prefix hits, free counts and free-queue order on both.
"""
from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st

from agentwatt.sim.kv import BlockManager


class ReferenceBlockManager:
    def __init__(self, num_blocks):
        self.ref = [0] * num_blocks
        self.block_hash = [None] * num_blocks
        self.free = OrderedDict((b, None) for b in range(num_blocks))
        self.cached = {}

    def match_prefix(self, hashes, max_blocks):
        hit = []
        for h in hashes[:max_blocks]:
            b = self.cached.get(h)
            if b is None:
                break
            hit.append(b)
        return hit

    def cost_of(self, hit, new_blocks):
        return new_blocks + sum(1 for b in hit if self.ref[b] == 0)

    def take(self, hit):
        for b in hit:
            if self.ref[b] == 0:
                del self.free[b]
            self.ref[b] += 1

    def allocate(self, n):
        if n > len(self.free):
            return None
        out = []
        for _ in range(n):
            b, _ = self.free.popitem(last=False)
            h = self.block_hash[b]
            if h is not None:
                if self.cached.get(h) == b:
                    del self.cached[h]
                self.block_hash[b] = None
            self.ref[b] = 1
            out.append(b)
        return out

    def register(self, blocks, hashes, start, end):
        for i in range(start, min(end, len(hashes), len(blocks))):
            h, b = hashes[i], blocks[i]
            if h not in self.cached and self.block_hash[b] is None:
                self.cached[h] = b
                self.block_hash[b] = h

    def release(self, blocks):
        for b in reversed(blocks):
            self.ref[b] -= 1
            if self.ref[b] == 0:
                self.free[b] = None
                if self.block_hash[b] is None:
                    self.free.move_to_end(b, last=False)


def _check_same(ops, num_blocks):
    new, ref = BlockManager(num_blocks, 4), ReferenceBlockManager(num_blocks)
    held = []     # (blocks, chain) referenced on both
    chains = [[hash(("chain", c, i)) for i in range(40)] for c in range(8)]
    for op, n, c in ops:
        if op == "new":                      # a fresh request: allocate, compute, register
            a, b = new.allocate(n % 12), ref.allocate(n % 12)
            assert a == b
            if a:
                held.append((a, c))
                if n % 3:
                    new.register(a, chains[c], 0, len(a) - n % 2)
                    ref.register(b, chains[c], 0, len(b) - n % 2)
        elif op == "hit":                    # a later call: prefix hit plus new blocks
            hashes = chains[c]
            a, b = new.match_prefix(hashes, n), ref.match_prefix(hashes, n)
            assert a == b
            assert new.cost_of(a, 0) == ref.cost_of(b, 0)
            if a:
                new.take(a)
                ref.take(b)
                more = n % 4
                if more <= len(ref.free) - 0:
                    x, y = new.allocate(more), ref.allocate(more)
                    assert x == y
                    a, b = a + (x or []), b + (y or [])
                    new.register(a, chains[c], 0, len(a))
                    ref.register(b, chains[c], 0, len(b))
                held.append((a, c))
        elif op == "release" and held:
            blocks, _ = held.pop(n % len(held))
            new.release(blocks)
            ref.release(blocks)
        assert new.num_free == len(ref.free)
        assert new.free_order() == list(ref.free)
    new.check()


ops = st.lists(st.tuples(st.sampled_from(["new", "hit", "hit", "release", "release"]),
                         st.integers(0, 40), st.integers(0, 7)), max_size=300)


@settings(max_examples=200, deadline=None)
@given(num_blocks=st.integers(1, 48), ops=ops)
def test_same_behaviour_as_an_lru_dict(num_blocks, ops):
    _check_same(ops, num_blocks)


def test_agent_loop_pattern_same_as_lru_dict():
    """Sessions that free a context and hit its head on the next call (the fast path)."""
    import random
    rng = random.Random(3)
    ops = []
    for _ in range(3000):
        ops.append((rng.choice(["new", "hit", "hit", "hit", "release", "release"]), rng.randrange(41), rng.randrange(8)))
    _check_same(ops, 64)


def test_stale_entries_are_compacted_and_memory_stays_bounded():
    kv = BlockManager(num_blocks=8, block_size=4)
    hashes = [hash(("p", i)) for i in range(8)]
    blocks = kv.allocate(8)
    kv.register(blocks, hashes, 0, 8)
    kv.release(blocks)
    other = [hash(("q", i)) for i in range(8)]
    for i in range(10_000):          # hit and free the same cached prefix over and over
        hit = kv.match_prefix(hashes, 8)
        assert hit == blocks
        kv.take(hit[i % 3:] if i % 2 else hit)
        kv.release(hit[i % 3:] if i % 2 else hit)
        assert kv.match_prefix(other, 8) == []
    assert kv._entries <= 2 * kv.num_blocks + 1024 + 8
    assert sorted(kv.free_order()) == sorted(blocks)
    kv.check()
