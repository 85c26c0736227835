"""KV-cache block manager with prefix caching (vLLM-style, written small; no SimPy).

Blocks hold ``block_size`` tokens. A block whose tokens are all computed gets the hash of its
content (chained from the previous block's hash, so equal hashes mean equal prefixes) and is
entered in the prefix cache. A block nobody references sits in the free queue, least recently
used first; allocating takes from the front and evicts the cached hash of the block it takes.

Token layout of a request (``num_computed`` catches up to ``num_tokens``)::

    | hit (cached blocks) | computed this far | new this step | not yet |
    0                hit_tokens        num_computed     +n        num_tokens

Requests free their blocks in reverse order, so the tail of a context is evicted before its
head (a later request is likelier to share the head).
"""
from __future__ import annotations

from array import array
from collections import deque
from typing import Sequence




_NO_HASH = -1   # Python's hash() never returns -1
_IDS: list[int] = []


def _block_ids(n: int) -> list[int]:
    """One process-wide list ``0, 1, …`` (at least n long) as the first run of every manager: block
    ids are then the same int objects in every replica and request (ints above 256 are otherwise
    a new 28-byte object per allocation). Runs are never mutated, only their windows."""
    if len(_IDS) < n:
        _IDS.extend(range(len(_IDS), n))
    return _IDS


class BlockManager:
    """Fixed pool of ``num_blocks`` KV blocks with an optional prefix cache.

    The free queue (LRU first) is a deque of *runs*: the blocks one ``release`` freed, in the order
    it freed them (or, at the start, the virtual ``range(num_blocks)``), with a live window
    ``[lo, hi)``. An entry for block b in run s is live iff ``ref[b] == 0`` and ``where[b] == s``:
    taking a cached block, or freeing it again into a newer run, makes the old entry stale, and
    ``allocate`` skips stale entries as it pops from the front. The usual agent pattern costs no
    per-block queue work: a call frees its context tail first as one run, and the session's next
    call hits that context's head, which is the end of that run, so ``take`` just moves ``hi``.
    This keeps the order of a per-block LRU dict (tested against one) without a linked-list node
    per block; per-block state is in compact arrays; the queue is rebuilt when stale entries
    outnumber the pool.
    """

    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool = True) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError("num_blocks and block_size must be >= 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self.ref = [0] * num_blocks
        self.block_hash = array("q", [_NO_HASH]) * num_blocks   # content hash of a cached block
        self._where = array("q", [0]) * num_blocks              # segment id of its live free entry
        first = [0, _block_ids(num_blocks), 0, num_blocks]      # [run id, blocks, lo, hi]
        self._segs: deque = deque([first])
        self._runs: dict[int, list] = {0: first}
        self._next_seg = 1
        self._free = num_blocks
        self._entries = num_blocks                               # queue entries, stale included
        self.cached: dict[int, int] = {}  # content hash -> block id
        self.hits_blocks = 0      # blocks found in the cache at admission
        self.lookups_blocks = 0   # full prompt blocks looked up at admission

    # ------------------------------------------------------------------ queries
    @property
    def num_free(self) -> int:
        return self._free

    @property
    def num_used(self) -> int:
        return self.num_blocks - self._free

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def match_prefix(self, hashes: Sequence[int], max_blocks: int) -> list[int]:
        """Block ids of the longest cached prefix of ``hashes`` (at most ``max_blocks``)."""
        if not self.prefix_caching:
            return []
        hit: list[int] = []
        get = self.cached.get
        append = hit.append
        for h in hashes[:max_blocks]:
            b = get(h)
            if b is None:
                break
            append(b)
        return hit

    def hashes_of(self, blocks: Sequence[int]) -> list[int]:
        """Content hashes of the leading cached blocks of ``blocks`` (up to the first uncached one)."""
        out: list[int] = []
        bh = self.block_hash
        for b in blocks:
            h = bh[b]
            if h == _NO_HASH:
                break
            out.append(h)
        return out

    def cost_of(self, hit: Sequence[int], new_blocks: int) -> int:
        """Free blocks consumed by taking ``hit`` (those now unreferenced) plus ``new_blocks``."""
        return new_blocks + list(map(self.ref.__getitem__, hit)).count(0)

    # ---------------------------------------------------------------- mutations
    def take(self, hit: Sequence[int]) -> None:
        """Reference the cached blocks of a prefix hit (those unreferenced leave the free queue)."""
        ref = self.ref
        freed = [b for b in hit if not ref[b]]
        for b in hit:
            ref[b] += 1
        k = len(freed)
        if not k:
            return
        self._free -= k
        if not self._drop_run_end(freed, 0, k):
            # several runs (e.g. a prefix shared with other sessions, then this session's own
            # context): try each group of consecutive blocks freed by the same release
            where = self._where
            i = k
            while i > 0:
                sid = where[freed[i - 1]]
                j = i - 1
                while j > 0 and where[freed[j - 1]] == sid:
                    j -= 1
                self._drop_run_end(freed, j, i)
                i = j

    def _drop_run_end(self, freed: list[int], j: int, i: int) -> bool:
        """If freed[j:i], reversed, is the end of the live window of one run, shrink the window
        (those entries just went stale)."""
        k = i - j
        run = self._runs.get(self._where[freed[i - 1]])
        if run is None:
            return False
        blocks, lo, hi = run[1], run[2], run[3]
        if hi - lo < k or blocks[hi - k:hi] != freed[i - 1:j - 1 if j else None:-1]:
            return False
        run[3] = hi - k
        self._entries -= k
        return True

    def allocate(self, n: int) -> list[int] | None:
        """``n`` fresh blocks, evicting least recently used cached blocks; None if too few free."""
        if n > self._free:
            return None
        out: list[int] = []
        if n <= 0:
            return out
        ref, where, bh, cached, segs = self.ref, self._where, self.block_hash, self.cached, self._segs
        left = n
        while left:
            seg = segs[0]
            sid, blocks, pos, end = seg
            start = pos
            while pos < end:
                b = blocks[pos]
                pos += 1
                if not ref[b] and where[b] == sid:
                    ref[b] = 1
                    h = bh[b]
                    if h != _NO_HASH:
                        del cached[h]
                        bh[b] = _NO_HASH
                    out.append(b)
                    left -= 1
                    if not left:
                        break
            self._entries -= pos - start
            if pos >= end:
                segs.popleft()
                del self._runs[sid]
            else:
                seg[2] = pos
        self._free -= n
        return out

    def register(self, blocks: Sequence[int], hashes: Sequence[int], start: int, end: int) -> None:
        """Enter blocks[start:end] (now fully computed) into the prefix cache under their hashes."""
        if not self.prefix_caching:
            return
        cached, bh = self.cached, self.block_hash
        for i in range(start, min(end, len(hashes), len(blocks))):
            h = hashes[i]
            b = blocks[i]
            if h not in cached and bh[b] == _NO_HASH:
                cached[h] = b
                bh[b] = h

    def release(self, blocks: Sequence[int]) -> None:
        """Drop one reference to each block, tail first; unreferenced blocks join the free queue
        at its back, except uncached ones (worthless content), which go to its front."""
        ref = self.ref
        freed = []
        for b in reversed(blocks):
            r = ref[b] - 1
            ref[b] = r
            if not r:
                freed.append(b)
        if not freed:
            return
        sid = self._next_seg
        self._next_seg = sid + 2
        where, bh = self._where, self.block_hash
        hashes = list(map(bh.__getitem__, freed))
        if _NO_HASH in hashes:
            uncached = [b for b, h in zip(freed, hashes) if h == _NO_HASH]
            back = [b for b, h in zip(freed, hashes) if h != _NO_HASH]
            uncached.reverse()      # each was moved to the front in turn: the last ends up first
            for b in uncached:
                where[b] = sid + 1
            run = [sid + 1, uncached, 0, len(uncached)]
            self._segs.appendleft(run)
            self._runs[sid + 1] = run
        else:
            back = freed
        if back:
            for b in back:
                where[b] = sid
            run = [sid, back, 0, len(back)]
            self._segs.append(run)
            self._runs[sid] = run
        self._free += len(freed)
        self._entries += len(freed)
        if self._entries > 2 * self.num_blocks + 1024:
            self._compact()

    def _compact(self) -> None:
        """Rebuild the free queue from its live entries, in order (drops stale entries)."""
        ref, where = self.ref, self._where
        sid = self._next_seg
        self._next_seg = sid + 1
        live = []
        for old, blocks, lo, hi in self._segs:
            for i in range(lo, hi):
                b = blocks[i]
                if not ref[b] and where[b] == old:
                    live.append(b)
        for b in live:
            where[b] = sid
        run = [sid, live, 0, len(live)]
        self._segs = deque([run]) if live else deque()
        self._runs = {sid: run} if live else {}
        self._entries = len(live)

    def drop_tables(self) -> None:
        """Free the per-block tables once a run is over and checked (a 1,000-replica fleet holds
        ~1-2 GB in them); counters and sizes stay for the summary. The manager is unusable after."""
        self.ref = []
        self.block_hash = array("q")
        self._where = array("q")
        self._segs = deque()
        self._runs = {}
        self.cached = {}

    def free_order(self) -> list[int]:
        """The free queue's blocks, least recently used first (for tests and checks)."""
        ref, where = self.ref, self._where
        return [blocks[i] for sid, blocks, lo, hi in self._segs for i in range(lo, hi)
                if not ref[blocks[i]] and where[blocks[i]] == sid]

    def check(self) -> None:
        """Invariant check: reference counts, the free queue and the prefix cache agree."""
        ref = self.ref
        for b in range(self.num_blocks):
            if ref[b] < 0:
                raise AssertionError(f"block {b} has negative refcount")
        order = self.free_order()
        zero = sum(1 for r in ref if r == 0)
        if len(order) != zero or len(set(order)) != zero or self._free != zero:
            raise AssertionError(f"free queue holds {len(order)} live entries ({len(set(order))} distinct), "
                                 f"counter says {self._free}, {zero} blocks have refcount 0")
        for h, b in self.cached.items():
            if self.block_hash[b] != h:
                raise AssertionError(f"prefix cache maps a hash to block {b}, which holds another")


class CountingBlockManager:
    """The block pool without a prefix cache: only how many blocks are free matters, so blocks are
    counted, not tracked one by one (same interface as ``BlockManager``; block ids are all -1)."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError("num_blocks and block_size must be >= 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_caching = False
        self._free = num_blocks
        self.hits_blocks = 0
        self.lookups_blocks = 0

    @property
    def num_free(self) -> int:
        return self._free

    @property
    def num_used(self) -> int:
        return self.num_blocks - self._free

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def match_prefix(self, hashes, max_blocks: int) -> list[int]:
        return []

    def cost_of(self, hit, new_blocks: int) -> int:
        return new_blocks

    def take(self, hit) -> None:
        pass

    def allocate(self, n: int) -> list[int] | None:
        if n > self._free:
            return None
        self._free -= n
        return [-1] * n

    def register(self, blocks, hashes, start: int, end: int) -> None:
        pass

    def release(self, blocks) -> None:
        self._free += len(blocks)

    def drop_tables(self) -> None:
        pass

    @property
    def ref(self) -> list[int]:
        """Total references (for the end-of-run invariant): every used block has one."""
        return [self.num_used]

    def check(self) -> None:
        if not 0 <= self._free <= self.num_blocks:
            raise AssertionError(f"free block count {self._free} outside 0..{self.num_blocks}")
