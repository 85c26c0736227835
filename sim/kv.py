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

from collections import OrderedDict
from typing import Iterable, Sequence

from agentwatt.traces.schema import Segment


def block_hashes(segments: Iterable[Segment], block_size: int) -> list[int]:
    """Chained content hash of every *full* block of the token sequence described by ``segments``.

    Block i covers tokens [i*bs, (i+1)*bs). Its content is the list of (segment key, first offset,
    last offset) pieces it spans; its hash chains the previous block's hash with that content.
    """
    return BlockHasher(block_size).extend(segments).hashes


class BlockHasher:
    """Incremental ``block_hashes``: extend a hashed token sequence by more segments.

    An agent's next call repeats its previous call's prompt and output and appends a little, so
    hashing only the appended segments (after copying the state) gives the same hashes for a
    fraction of the work.
    """

    __slots__ = ("block_size", "hashes", "prev", "pieces", "fill")

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.hashes: list[int] = []
        self.prev = 0
        self.pieces: list[tuple[str, int, int]] = []
        self.fill = 0

    def copy(self) -> "BlockHasher":
        h = BlockHasher(self.block_size)
        h.hashes = list(self.hashes)
        h.prev = self.prev
        h.pieces = list(self.pieces)
        h.fill = self.fill
        return h

    def extend(self, segments: Iterable[Segment]) -> "BlockHasher":
        bs = self.block_size
        out, pieces = self.hashes, self.pieces
        prev, fill = self.prev, self.fill
        for seg in segments:
            off = 0
            n = seg.tokens
            key = seg.key
            while off < n:
                take = min(bs - fill, n - off)
                pieces.append((key, off, off + take))
                off += take
                fill += take
                if fill == bs:
                    prev = hash((prev, tuple(pieces)))
                    out.append(prev)
                    pieces.clear()
                    fill = 0
        self.prev, self.fill = prev, fill
        return self


class BlockManager:
    """Fixed pool of ``num_blocks`` KV blocks with an optional prefix cache."""

    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool = True) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError("num_blocks and block_size must be >= 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self.ref = [0] * num_blocks
        self.block_hash: list[int | None] = [None] * num_blocks
        self.free: OrderedDict[int, None] = OrderedDict((b, None) for b in range(num_blocks))
        self.cached: dict[int, int] = {}  # content hash -> block id
        self.hits_blocks = 0      # blocks found in the cache at admission
        self.lookups_blocks = 0   # full prompt blocks looked up at admission

    # ------------------------------------------------------------------ queries
    @property
    def num_free(self) -> int:
        return len(self.free)

    @property
    def num_used(self) -> int:
        return self.num_blocks - len(self.free)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def match_prefix(self, hashes: Sequence[int], max_blocks: int) -> list[int]:
        """Block ids of the longest cached prefix of ``hashes`` (at most ``max_blocks``)."""
        if not self.prefix_caching:
            return []
        hit: list[int] = []
        cached = self.cached
        for h in hashes[:max_blocks]:
            b = cached.get(h)
            if b is None:
                break
            hit.append(b)
        return hit

    def cost_of(self, hit: Sequence[int], new_blocks: int) -> int:
        """Free blocks consumed by taking ``hit`` (those now unreferenced) plus ``new_blocks``."""
        ref = self.ref
        return new_blocks + sum(1 for b in hit if ref[b] == 0)

    # ---------------------------------------------------------------- mutations
    def take(self, hit: Sequence[int]) -> None:
        """Reference the cached blocks of a prefix hit (removes them from the free queue)."""
        ref, free = self.ref, self.free
        for b in hit:
            if ref[b] == 0:
                del free[b]
            ref[b] += 1

    def allocate(self, n: int) -> list[int] | None:
        """``n`` fresh blocks, evicting least recently used cached blocks; None if too few free."""
        if n > len(self.free):
            return None
        out = []
        free, ref, bh, cached = self.free, self.ref, self.block_hash, self.cached
        for _ in range(n):
            b, _ = free.popitem(last=False)
            h = bh[b]
            if h is not None:
                if cached.get(h) == b:
                    del cached[h]
                bh[b] = None
            ref[b] = 1
            out.append(b)
        return out

    def register(self, blocks: Sequence[int], hashes: Sequence[int], start: int, end: int) -> None:
        """Enter blocks[start:end] (now fully computed) into the prefix cache under their hashes."""
        if not self.prefix_caching:
            return
        cached, bh = self.cached, self.block_hash
        for i in range(start, min(end, len(hashes), len(blocks))):
            h = hashes[i]
            b = blocks[i]
            if h not in cached and bh[b] is None:
                cached[h] = b
                bh[b] = h

    def release(self, blocks: Sequence[int]) -> None:
        """Drop one reference to each block, tail first; unreferenced blocks join the free queue."""
        ref, free, bh = self.ref, self.free, self.block_hash
        for b in reversed(blocks):
            ref[b] -= 1
            if ref[b] == 0:
                free[b] = None
                if bh[b] is None:
                    # uncached content is worthless: evict it before any cached block
                    free.move_to_end(b, last=False)

    def check(self) -> None:
        """Invariant check: reference counts and the free queue agree."""
        for b in range(self.num_blocks):
            if self.ref[b] < 0:
                raise AssertionError(f"block {b} has negative refcount")
            if (self.ref[b] == 0) != (b in self.free):
                raise AssertionError(f"block {b}: refcount {self.ref[b]} vs free-queue membership")


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

    @property
    def ref(self) -> list[int]:
        """Total references (for the end-of-run invariant): every used block has one."""
        return [self.num_used]

    def check(self) -> None:
        if not 0 <= self._free <= self.num_blocks:
            raise AssertionError(f"free block count {self._free} outside 0..{self.num_blocks}")
