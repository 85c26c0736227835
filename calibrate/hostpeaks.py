"""Peak rates of the local CPU, measured: the "datasheet" a CPU profile's roofline transfer needs.

Two microbenchmarks with torch's current thread count, best of a few runs (the least disturbed):

* FLOP/s: an fp32 ``n x n`` matmul (``2 n³`` FLOPs);
* memory bandwidth: ``dst.copy_(src)`` of a buffer far larger than the caches (read + write bytes).

They are achievable rates, not theoretical peaks, so efficiencies measured against them are
"fraction of what this CPU does at its best", which is what a transfer needs to carry over. On a
shared VM single runs vary by 2x or more (other jobs' bursts), hence the best of many short runs;
the peaks cancel out of a transfer to the same CPU (``--to local-cpu``), not of one to a GPU.
"""
from __future__ import annotations

import time

import torch

from agentwatt.core.gpus import CpuPeaks


def measure_cpu_peaks(matmul_n: int = 768, copy_mib: int = 64, repeats: int = 15) -> CpuPeaks:
    a = torch.randn(matmul_n, matmul_n)
    b = torch.randn(matmul_n, matmul_n)
    torch.mm(a, b)  # warm-up
    best_mm = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    n = copy_mib * 2**20 // 4
    src = torch.ones(n)
    dst = torch.empty(n)
    dst.copy_(src)
    best_copy = min(_timed(lambda: dst.copy_(src)) for _ in range(repeats))
    return CpuPeaks(fp32_gflops=2 * matmul_n**3 / best_mm / 1e9, mem_gbps=2 * n * 4 / best_copy / 1e9,
                    threads=torch.get_num_threads(),
                    method=f"fp32 {matmul_n}x{matmul_n} matmul; copy of {copy_mib} MiB; best of {repeats}")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
