"""Host memory a run will allocate, checked before time 0.

A scenario can pass every range check and still ask for more memory than any machine has
(``[fleet] replicas = 1e6`` with a large KV cache, ``[run] duration_s = 1e9`` at 1 s power bins):
without this check the run ends, minutes later, in a ``MemoryError`` traceback. The estimate
counts the tables whose size the scenario fixes in advance; the per-session state that grows with
the load is not counted, so a run that passes can still run out of memory (the CLI then says so in
one line).
"""
from __future__ import annotations

import os

from agentwatt.core.errors import InputError
from agentwatt.sim.metrics import REPLICA_CHANNELS

# Bytes per KV block of a prefix-caching BlockManager (sim/kv.py): one list slot for ``ref`` (8 B
# pointer; the small ints it points to are shared) and two ``array("q")`` entries (``block_hash``,
# ``_where``, 8 B each), as sys.getsizeof grows on 64-bit CPython; the process-wide block-id list
# (8 B slot + a 28-byte int object, sys.getsizeof(257)) is counted once. CountingBlockManager: none.
KV_BYTES_PER_BLOCK = 8 + 8 + 8
BLOCK_ID_BYTES = 8 + 28
# TimeBins (sim/metrics.py) double their arrays as time advances: up to 2 × 8 B per bin and channel.
BIN_BYTES = 2 * 8
# Fleet power (sim/facility.py fleet_power and the power frame): ~16 float64 columns per bin for
# the whole fleet (GPU, host, IT, facility watts, the time-split shares, PUE, carbon, price), and
# one float64 row per server; counted as 32 columns to cover pandas' intermediate copies.
FLEET_COLUMNS = 32


def available_bytes() -> int | None:
    """Memory the kernel says a new allocation can get (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def run_bytes(replicas: int, kv_blocks: int, prefix_caching: bool, sim_s: float, resolution_s: float,
              gpus_per_server: int, tp: int) -> int:
    """Bytes of the fixed-size tables of a run: KV block tables, per-replica energy bins, fleet power."""
    bins = int(sim_s / resolution_s) + 2
    kv = (replicas * KV_BYTES_PER_BLOCK + BLOCK_ID_BYTES) * kv_blocks if prefix_caching else 0
    servers = -(-replicas * tp // max(gpus_per_server, 1))
    return kv + replicas * bins * len(REPLICA_CHANNELS) * BIN_BYTES + bins * (FLEET_COLUMNS + servers) * 8


def check_fits(scenario, kv_blocks: int, gpus_per_server: int, tp: int, available: int | None = None) -> None:
    """InputError when the run's fixed tables (``run_bytes``) exceed the memory available."""
    avail = available_bytes() if available is None else available
    if avail is None:
        return
    run, eng = scenario.run, scenario.engine
    # the time a run surely reaches: the end of arrivals of an open-loop class (closed-loop users and
    # trace replays may end long before [run] duration_s, which is then only a bound; drain too)
    open_loop = any(wc.arrival != "closed" and (wc.trace is None or wc.retime) for wc in scenario.workload)
    sim_s = run.duration_s if open_loop else 0.0
    need = run_bytes(scenario.fleet.replicas, kv_blocks, eng.prefix_caching, sim_s, run.power_resolution_s,
                     gpus_per_server, tp)
    if need > avail:
        raise InputError(
            f"{scenario.source}: the run needs about {need / 2**30:.3g} GiB of host memory for its KV block tables "
            f"({scenario.fleet.replicas} replica(s) × {kv_blocks} blocks) and power bins "
            f"({sim_s:g} s / {run.power_resolution_s:g} s); {avail / 2**30:.3g} GiB "
            f"are available: expected fewer [fleet] replicas, a smaller [engine] kv_capacity_tokens (or profile "
            f"memory), a shorter [run] duration_s or a coarser power_resolution_s")
