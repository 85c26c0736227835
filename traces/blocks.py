"""Prompt blocks by content: the chained hash of every full KV block of a token sequence.

A session's prompt is a list of ``Segment``s (a key naming shared content + a token count). Two calls
whose first n blocks have equal hashes share those n blocks of KV (the prefix cache's key). Pure
functions; the block manager (``sim/kv.py``) and the workload statistics (``traces/stats.py``) use
them.
"""
from __future__ import annotations

from typing import Iterable

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
            n = seg.tokens
            if n <= 0:
                continue
            key = seg.key
            off = 0
            if fill:                       # finish the block the previous segment left open
                take = bs - fill if bs - fill < n else n
                pieces.append((key, 0, take))
                off = take
                fill += take
                if fill < bs:
                    continue
                prev = hash((prev, tuple(pieces)))
                out.append(prev)
                pieces.clear()
                fill = 0
            last = off + (n - off) // bs * bs
            for e in range(off + bs, last + 1, bs):   # whole blocks inside this segment
                prev = hash((prev, ((key, e - bs, e),)))
                out.append(prev)
            if last < n:
                pieces.append((key, last, n))
                fill = n - last
        self.prev, self.fill = prev, fill
        return self
