"""A host-memory KV tier per replica: offload a session's KV while it waits on a tool, load it back.

No SimPy here: the session process (``sim/session.py``) asks this module what to do and for how
long, and waits. The model, in the order a session meets it:

* **Capacity.** ``[engine] kv_host_gib_per_gpu`` GiB of the server's host memory per GPU hold KV
  (at most the server's memory per GPU, ``HOST_MEMORY_GIB``); a replica of ``tp`` GPUs holds
  ``tp`` shares. The tier stores blocks by content hash (as LMCache and vLLM's CPU offload do), LRU.
* **Offload** is a copy: when a session's tool call starts, the blocks of its last call that the
  host does not hold yet go GPU → host (D2H); the GPU copies stay in the prefix cache, evictable,
  once the copy is done. The copy is off the critical path (the tool is running). A kept pin that
  the engine drops for GPU memory (``batching``'s ``on_pin_dropped``) is spilled the same way; the
  step that needed the blocks does not wait for that copy [I].
* **Load.** When the session's next call reaches the replica, the blocks after its GPU prefix hit
  that the host holds come back (H2D) before the call is queued: on its critical path, unless
  ``kv_prefetch`` started the load so that it ends with the tool (an oracle on the tool's duration:
  the upper bound of what prefetching hides). The engine enters them in its prefix cache when it
  admits the call (``batching``'s ``host_match``): computed, not recomputed. ``prefix_cache_hit_rate``
  stays the GPU tier's; the host tier's is ``kv_tiers.host_hit_rate``.
* **Links.** Each direction of a replica's link is a FIFO: a transfer starts when the previous one
  ended. Each of the ``tp`` GPUs moves its shard of a block over its own link, so a replica moves
  ``tp × link`` bytes per second.
* **Energy** per byte moved, GPU side (HBM) plus host side (DRAM), booked apart from the GPU
  power series (``offload_energy_j``).
* **Retention policies** (``RETENTION``): ``offload`` always; ``cost`` keeps the KV pinned when the
  GPU has room (nobody waits and the free pool is at least the session's blocks), else offloads
  when the tool is expected to outlast the reload and the host tier can hold the blocks, else drops.
  The expected tool time is the tool's own duration (an oracle, like the prefetch's).

Blocks are conserved per tier: GPU blocks by ``kv.BlockManager.check``; host slots by
``HostTier.check`` (stored − evicted = resident ≤ capacity).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

from agentwatt.core.errors import InputError


@dataclass(frozen=True)
class LinkSpec:
    name: str
    gb_per_s: float        # usable GB/s (1e9 B/s) per direction, per GPU
    source: str


# PCIe x16 per direction: lanes × GT/s × 128/130 encoding / 8 bits (PCI-SIG base specifications 3.0-5.0,
# https://pcisig.com/specifications; table in https://fridayswithfaraday.com/posts/gpu-hw-pcie-gen5-bandwidth-bottleneck:
# Gen3 15.75, Gen4 31.5, Gen5 63 GB/s), times 0.8: the same page measures cudaMemcpy 20-40 % below the
# peak; we take the best case (20 %).
_ACHIEVED = 0.8
LINKS = {
    "pcie-gen3-x16": LinkSpec("pcie-gen3-x16", 15.75 * _ACHIEVED, "PCIe 3.0 x16 15.75 GB/s peak x 0.8 achieved"),
    "pcie-gen4-x16": LinkSpec("pcie-gen4-x16", 31.5 * _ACHIEVED, "PCIe 4.0 x16 31.5 GB/s peak x 0.8 achieved"),
    "pcie-gen5-x16": LinkSpec("pcie-gen5-x16", 63.0 * _ACHIEVED, "PCIe 5.0 x16 63 GB/s peak x 0.8 achieved"),
    # GH200 NVLink-C2C: 900 GB/s total, 450 GB/s per direction (NVIDIA Grace Hopper architecture, as cited in
    # https://datacrunch.io/blog/data-movement-in-the-nvidia-gh200-grace-hopper-superchip). Peak: no measured
    # achieved fraction in our references.
    "nvlink-c2c": LinkSpec("nvlink-c2c", 450.0, "GH200 NVLink-C2C 450 GB/s per direction (peak)"),
}

# Host memory per server (GiB) and the GPU's host link:
# DGX A100 320GB: 1 TB system memory, PCIe Gen4 (https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/
#   nvidia-dgx-a100-datasheet.pdf; the 640GB model has 2 TB);
# DGX H100/H200: 2 TB, PCIe Gen5 (https://docs.nvidia.com/dgx/dgxh100-user-guide/introduction-to-dgxh100.html);
# DGX B200: 2 TB (4 TB optional), PCIe Gen5 (https://docs.nvidia.com/dgx/dgxb200-user-guide/introduction-to-dgxb200.html).
HOST_MEMORY_GIB = {"dgx-a100": 1024.0, "dgx-h100": 2048.0, "dgx-b200": 2048.0}
SERVER_LINKS = {"dgx-a100": "pcie-gen4-x16", "dgx-h100": "pcie-gen5-x16", "dgx-b200": "pcie-gen5-x16"}

# Energy per bit moved [I, estimate]: GPU side, HBM2E device 6.0 pJ/bit (http://www.kylolab.com/
# ultra-bandwidth-solutions.html); host side, DDR4 at 2.2x HBM's energy per bit transfer (the middle of
# 2-2.4x, Lee et al. 2021 as cited in https://git.avrdev.de/derek/master-thesis, src/chapters/dram.tex)
# = 13.2 pJ/bit. The PCIe PHY's share is not modelled (no figure in our references).
GPU_PJ_PER_BIT = 6.0
HOST_PJ_PER_BIT = 6.0 * 2.2

RETENTION = ("drop", "keep", "ttl", "offload", "cost")
TIERED = ("offload", "cost")


# ------------------------------------------------------------------------------ pure math
def transfer_s(nbytes: float, gb_per_s: float, latency_s: float = 0.0) -> float:
    """Seconds to move ``nbytes`` over a link of ``gb_per_s`` (1e9 B/s) with a fixed per-transfer latency."""
    if nbytes <= 0:
        return 0.0
    return latency_s + nbytes / (gb_per_s * 1e9)


def transfer_energy_j(nbytes: float, pj_per_bit: float = GPU_PJ_PER_BIT + HOST_PJ_PER_BIT) -> float:
    """Joules to read ``nbytes`` on one side and write them on the other (both memories' pJ/bit)."""
    return nbytes * 8 * pj_per_bit * 1e-12


def breakeven_gb_per_s(kv_bytes_per_token: float, recompute_s_per_token: float) -> float:
    """The link speed (GB/s, whole replica) at which loading a token's KV takes as long as
    recomputing it: slower links make offloading lose to dropping."""
    return kv_bytes_per_token / recompute_s_per_token / 1e9


def host_blocks(gib_per_gpu: float, tp: int, block_bytes: float) -> int:
    """Blocks of a replica's host tier: its ``tp`` GPUs' shares of host memory / bytes per block."""
    return int(gib_per_gpu * tp * 2**30 // block_bytes)


def retention_choice(policy: str, *, tool_s: float, n_blocks: int, gpu_free_blocks: int, waiting: int,
                     reload_s: float, host_capacity_blocks: int) -> str:
    """"keep", "offload" or "drop" for a session's KV as its tool call starts (module docstring)."""
    if policy == "offload":
        return "offload"
    if policy != "cost":
        raise ValueError(f"retention_choice: policy {policy!r} is not tiered")
    if waiting == 0 and gpu_free_blocks >= n_blocks:
        return "keep"
    if tool_s > reload_s and n_blocks <= host_capacity_blocks:
        return "offload"
    return "drop"


# ------------------------------------------------------------------------------ state
class Link:
    """One direction of a replica's host link: transfers queue FIFO."""

    def __init__(self, gb_per_s: float, latency_s: float) -> None:
        self.gb_per_s = gb_per_s
        self.latency_s = latency_s
        self.free_at = 0.0
        self.busy_s = 0.0

    def reserve(self, now: float, nbytes: float) -> float:
        """Queue a transfer of ``nbytes`` at ``now``; returns when it ends."""
        s = transfer_s(nbytes, self.gb_per_s, self.latency_s)
        start = max(now, self.free_at)
        self.free_at = start + s
        self.busy_s += s
        return self.free_at


class HostTier:
    """Host-memory KV blocks by content hash, least recently used first."""

    def __init__(self, capacity_blocks: int) -> None:
        self.capacity = capacity_blocks
        self.blocks: OrderedDict[int, None] = OrderedDict()
        self.stored = 0        # blocks written (new content)
        self.evicted = 0       # blocks dropped by LRU to make room
        self.hit_blocks = 0    # blocks loaded back to the GPU
        self.peak = 0

    @property
    def used(self) -> int:
        return len(self.blocks)

    def missing(self, hashes: Sequence[int]) -> list[int]:
        """The hashes the tier does not hold (those an offload must copy)."""
        return [h for h in hashes if h not in self.blocks]

    def store(self, hashes: Sequence[int]) -> int:
        """Hold ``hashes`` (most recent at the back), evicting LRU blocks; returns blocks newly stored."""
        if self.capacity <= 0:
            return 0
        new = 0
        blocks = self.blocks
        for h in hashes:
            if h in blocks:
                blocks.move_to_end(h)
                continue
            if len(blocks) >= self.capacity:
                blocks.popitem(last=False)
                self.evicted += 1
            blocks[h] = None
            new += 1
        self.stored += new
        self.peak = max(self.peak, len(blocks))
        return new

    def match(self, hashes: Sequence[int], start: int, end: int) -> int:
        """How many of hashes[start:end], from ``start`` on, the tier holds in a row (touched as used)."""
        blocks = self.blocks
        n = 0
        for h in hashes[start:end]:
            if h not in blocks:
                break
            blocks.move_to_end(h)
            n += 1
        return n

    def check(self) -> None:
        if self.stored - self.evicted != len(self.blocks) or len(self.blocks) > max(self.capacity, 0):
            raise AssertionError(f"host tier: stored {self.stored} - evicted {self.evicted} != resident "
                                 f"{len(self.blocks)} (capacity {self.capacity})")


class ReplicaTier:
    """A replica's host tier, its two link directions and what moved (the summary reads ``row``)."""

    def __init__(self, index: int, capacity_blocks: int, block_bytes: float, gb_per_s: float,
                 latency_s: float, prefetch: bool) -> None:
        self.index = index
        self.host = HostTier(capacity_blocks)
        self.block_bytes = block_bytes
        self.d2h = Link(gb_per_s, latency_s)
        self.h2d = Link(gb_per_s, latency_s)
        self.prefetch = prefetch
        self.decisions = {"keep": 0, "offload": 0, "drop": 0}
        self.bytes_to_host = 0.0
        self.bytes_to_gpu = 0.0
        self.loads = 0
        self.spills = 0                 # pins dropped for GPU memory and copied to the host
        self.load_wait_s = 0.0          # load time on calls' critical paths
        self.lookup_blocks = 0          # blocks looked up on the host (after the GPU hit)
        self.use: list[tuple[float, int]] = [(0.0, 0)]   # (time, host blocks used) at each change

    def reload_s(self, n_blocks: int) -> float:
        return transfer_s(n_blocks * self.block_bytes, self.h2d.gb_per_s, self.h2d.latency_s)

    def note_use(self, now: float) -> None:
        if self.use[-1][1] != self.host.used:
            self.use.append((now, self.host.used))

    def offload(self, now: float, hashes: Sequence[int]) -> float:
        """Start copying the blocks of ``hashes`` the host lacks; returns when the copy ends."""
        nbytes = len(self.host.missing(hashes)) * self.block_bytes
        self.bytes_to_host += nbytes
        return self.d2h.reserve(now, nbytes) if nbytes else now

    def spill(self, now: float, policy: str, hashes: Sequence[int]) -> None:
        """A pin is dropped for GPU memory: ``offload`` copies it to the host, ``cost`` too when the
        host tier can hold it. The step that needed the blocks does not wait for the copy [I]."""
        if policy == "offload" or len(hashes) <= self.host.capacity:
            self.spills += 1
            self.offload(now, hashes)
            self.host.store(hashes)
            self.note_use(now)

    def load(self, now: float, n_blocks: int, hidden_s: float) -> float:
        """Queue loading ``n_blocks``; returns the seconds the call waits (``hidden_s`` of the
        transfer overlapped the tool when prefetching)."""
        nbytes = n_blocks * self.block_bytes
        self.bytes_to_gpu += nbytes
        self.loads += 1
        self.host.hit_blocks += n_blocks
        end = self.h2d.reserve(now, nbytes)
        wait = max(0.0, end - now - (hidden_s if self.prefetch else 0.0))
        self.load_wait_s += wait
        return wait

    def row(self, t_end: float) -> dict:
        """Counters, host use (time-weighted mean, peak) and transfer energy of this replica."""
        pts = self.use + [(t_end, self.host.used)]
        area = sum((t1 - t0) * u for (t0, u), (t1, _) in zip(pts, pts[1:]))
        moved = self.bytes_to_host + self.bytes_to_gpu
        return {"replica": self.index, **{f"{k}s": v for k, v in self.decisions.items()},
                "host_blocks": self.host.capacity, "host_peak_blocks": self.host.peak,
                "host_block_seconds": area, "host_stored_blocks": self.host.stored,
                "host_evicted_blocks": self.host.evicted, "host_lookup_blocks": self.lookup_blocks,
                "host_hit_blocks": self.host.hit_blocks,
                "bytes_to_host": self.bytes_to_host, "bytes_to_gpu": self.bytes_to_gpu, "loads": self.loads, "spills": self.spills,
                "load_wait_s": self.load_wait_s, "link_busy_s": self.d2h.busy_s + self.h2d.busy_s,
                "offload_energy_j": transfer_energy_j(moved)}


def spiller(env, tier: ReplicaTier, kv, policy: str):
    """The replica state's ``on_pin_dropped`` callback: spill a pin dropped for memory to the host."""
    def spill(blocks) -> None:
        tier.spill(env.now, policy, kv.hashes_of(blocks))
    return spill


def plan_load(tier: ReplicaTier, kv, hashes: Sequence[int], max_blocks: int, now: float,
              hidden_s: float) -> tuple[int, float]:
    """The blocks of ``hashes`` after the GPU prefix hit (up to ``max_blocks``, the call's prompt
    blocks) that the host holds in a row: they are queued on the H2D link now. Returns (blocks,
    seconds the call waits before it is queued). The engine enters them in the GPU cache when it
    admits the call (``batching``'s ``host_match``)."""
    gpu = len(kv.match_prefix(hashes, max_blocks))
    if gpu >= max_blocks:
        return 0, 0.0
    tier.lookup_blocks += max_blocks - gpu
    n = tier.host.match(hashes, gpu, max_blocks)
    return (n, tier.load(now, n, hidden_s)) if n else (0, 0.0)


def tiers_summary(rows: list[dict], policy: str, link: str, prefetch: bool, t_end: float,
                  calls_finished: int) -> dict:
    """The ``kv_tiers`` block of the summary from the replicas' ``ReplicaTier.row``s."""
    def tot(k: str) -> float:
        return sum(r[k] for r in rows)
    cap = tot("host_blocks")
    look = tot("host_lookup_blocks")
    return {
        "policy": policy, "link": link, "link_gb_per_s_per_gpu": LINKS[link].gb_per_s, "prefetch": prefetch,
        "host_blocks_per_replica": rows[0]["host_blocks"] if rows else 0,
        "decisions": {"keep": tot("keeps"), "offload": tot("offloads"), "drop": tot("drops")},
        "host_hit_rate": tot("host_hit_blocks") / look if look else None,
        "host_hit_blocks": tot("host_hit_blocks"), "host_lookup_blocks": look,
        "host_stored_blocks": tot("host_stored_blocks"), "host_evicted_blocks": tot("host_evicted_blocks"),
        "host_peak_utilization": max(r["host_peak_blocks"] for r in rows) / rows[0]["host_blocks"]
        if rows and rows[0]["host_blocks"] else None,
        "host_mean_utilization": tot("host_block_seconds") / (cap * t_end) if cap and t_end > 0 else None,
        "bytes_to_host": tot("bytes_to_host"), "bytes_to_gpu": tot("bytes_to_gpu"), "loads": tot("loads"), "spills": tot("spills"),
        "load_wait_s_total": tot("load_wait_s"),
        "load_wait_s_per_call": tot("load_wait_s") / calls_finished if calls_finished else None,
        "link_busy_s": tot("link_busy_s"), "offload_energy_j": tot("offload_energy_j"),
    }


def build_tiers(engine, profile, server: str, gpus_per_server: int, replicas: int, where: str) -> list[ReplicaTier]:
    """One ``ReplicaTier`` per replica for ``[engine]`` with a tiered ``kv_retention``."""
    total = HOST_MEMORY_GIB.get(server)
    if total is None:
        raise InputError(f"{where}: [engine] kv_retention = {engine.kv_retention!r}: no host memory figure for "
                         f"server {server!r}: expected [facility] server = one of {', '.join(sorted(HOST_MEMORY_GIB))}")
    if engine.kv_host_gib_per_gpu > total / gpus_per_server:
        raise InputError(f"{where}: [engine] kv_host_gib_per_gpu = {engine.kv_host_gib_per_gpu:g}: expected at most "
                         f"{total / gpus_per_server:g} (server {server!r}: {total:g} GiB host memory / "
                         f"{gpus_per_server} GPUs)")
    link = engine.kv_host_link or SERVER_LINKS[server]
    tp = profile.hardware.tp
    block_bytes = engine.block_size_tokens * profile.model.kv_bytes_per_token
    cap = host_blocks(engine.kv_host_gib_per_gpu, tp, block_bytes)
    return [ReplicaTier(i, cap, block_bytes, LINKS[link].gb_per_s * tp, engine.kv_host_latency_s, engine.kv_prefetch)
            for i in range(replicas)]
