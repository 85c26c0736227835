"""GPU catalog: the datasheet numbers a roofline transfer needs, one row per GPU, each with its source.

Units are in the field names. ``None`` means no source gave the number; ``notes`` says so. Tags as in
``docs/power.md``: [P] primary source (NVIDIA datasheet / user guide, or a simulator's data file),
[S] secondary summary of a primary source, [I] our arithmetic.

* ``hbm_gbps``: peak memory bandwidth, GB/s (10⁹ bytes/s).
* ``bf16_dense_tflops``: peak dense BF16 tensor throughput, TFLOP/s (NVIDIA also quotes a 2× figure
  "with sparsity"; we never use that one).
* ``mem_gib``: device memory as NVIDIA states it (their "GB" are the capacities ``nvidia-smi`` shows
  in GiB give or take the reserved part; the bundled A100-40GB profile uses 40).
* ``tdp_w``: maximum board power (TDP / TGP) of the SXM part (PCIe for the L40S, which has no SXM).
* ``idle_w``: measured idle power where a published source gives one.
* ``interconnect_gbps``: GPU-to-GPU bandwidth per GPU as NVIDIA quotes it, **bidirectional** (NVLink;
  PCIe for the L40S). An all-reduce moves data each way at half of it (see ``link_bytes_per_s``).

The "local CPU" row is not stored: ``cpu_spec(profile)`` builds it from a CPU profile's hardware and
the peak rates its calibration measured (``provenance.cpu_peaks``), because no datasheet describes
the machine a profile was measured on.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agentwatt.core.errors import InputError

KLOCKWOOD_A100 = "https://glennklockwood.com/garden/processors/A100 (from the NVIDIA A100 datasheet)"
KLOCKWOOD_B200 = "https://glennklockwood.com/garden/processors/B200 (HGX B200 at 1,000 W)"
A100_DATASHEET = "NVIDIA A100 Tensor Core GPU datasheet (SXM4 40GB/80GB columns)"
H100_DATASHEET = "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column)"
H200_DATASHEET = "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column), as reported in docs/power.md §4.2 [S]"
B200_GUIDE = "NVIDIA DGX B200 user guide (1,440 GB over 8 GPUs), docs/power.md §4.2 [P]"
L40S_DATASHEET = "NVIDIA L40S datasheet (table reproduced by resellers, e.g. mullet.se product 355414)"
SPLITWISE_POWER = "SplitwiseSim configs/power_model/constant.yaml (docs/power.md §3.1 [P])"


@dataclass(frozen=True, kw_only=True)
class GpuSpec:
    key: str
    name: str
    hbm_gbps: float | None
    bf16_dense_tflops: float | None
    mem_gib: float | None
    tdp_w: float | None
    idle_w: float | None
    interconnect_gbps: float | None
    interconnect: str
    sources: dict[str, str]
    notes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    kind: str = "gpu"

    @property
    def mem_bytes_per_s(self) -> float | None:
        return None if self.hbm_gbps is None else self.hbm_gbps * 1e9

    @property
    def flops(self) -> float | None:
        return None if self.bf16_dense_tflops is None else self.bf16_dense_tflops * 1e12

    @property
    def link_bytes_per_s(self) -> float | None:
        """Per-direction link bandwidth: half the bidirectional figure NVIDIA quotes."""
        return None if self.interconnect_gbps is None else self.interconnect_gbps * 1e9 / 2

    def row(self) -> dict[str, Any]:
        """The row as plain data (for provenance and ``--list``)."""
        return {"key": self.key, "name": self.name, "kind": self.kind, "hbm_gbps": self.hbm_gbps,
                "bf16_dense_tflops": self.bf16_dense_tflops, "mem_gib": self.mem_gib, "tdp_w": self.tdp_w,
                "idle_w": self.idle_w, "interconnect_gbps": self.interconnect_gbps,
                "interconnect": self.interconnect, "sources": dict(self.sources), "notes": list(self.notes)}


GPUS: dict[str, GpuSpec] = {g.key: g for g in (
    GpuSpec(key="a100-40gb", name="NVIDIA A100-SXM4-40GB", hbm_gbps=1555.0, bf16_dense_tflops=312.0, mem_gib=40.0,
            tdp_w=400.0, idle_w=None, interconnect_gbps=600.0, interconnect="NVLink 3",
            sources={"hbm_gbps": A100_DATASHEET + "; " + KLOCKWOOD_A100,
                     "bf16_dense_tflops": "docs/power.md §4.2 [P]; " + KLOCKWOOD_A100,
                     "mem_gib": A100_DATASHEET, "tdp_w": "docs/power.md §4.2 [P]; " + KLOCKWOOD_A100,
                     "interconnect_gbps": KLOCKWOOD_A100 + ": 300+300 GB/s NVLink"},
            notes=("idle_w: None — SplitwiseSim's 63 W A100 idle was calibrated on DGX-A100 and docs/power.md §3.1 lists "
                   "it for the 80GB board; the bundled 40GB profiles borrow it as an estimate",),
            aliases=("a100", "a100-sxm4-40gb")),
    GpuSpec(key="a100-80gb", name="NVIDIA A100-SXM4-80GB", hbm_gbps=2039.0, bf16_dense_tflops=312.0, mem_gib=80.0,
            tdp_w=400.0, idle_w=63.0, interconnect_gbps=600.0, interconnect="NVLink 3",
            sources={"hbm_gbps": "docs/power.md §4.2 [P]; " + KLOCKWOOD_A100,
                     "bf16_dense_tflops": "docs/power.md §4.2 [P]", "mem_gib": "docs/power.md §4.2 [P]",
                     "tdp_w": "docs/power.md §4.2 [P]", "idle_w": SPLITWISE_POWER,
                     "interconnect_gbps": KLOCKWOOD_A100 + ": same as the 40GB part"},
            aliases=("a100-sxm4-80gb",)),
    GpuSpec(key="h100", name="NVIDIA H100 SXM 80GB", hbm_gbps=3350.0, bf16_dense_tflops=989.0, mem_gib=80.0,
            tdp_w=700.0, idle_w=75.0, interconnect_gbps=900.0, interconnect="NVLink 4",
            sources={"hbm_gbps": "docs/power.md §4.2 [P]", "bf16_dense_tflops": "docs/power.md §4.2 [P] (1,979 with sparsity)",
                     "mem_gib": "docs/power.md §4.2 [P]", "tdp_w": "docs/power.md §4.2 [P]", "idle_w": SPLITWISE_POWER,
                     "interconnect_gbps": H100_DATASHEET + ": NVLink 900 GB/s"},
            aliases=("h100-sxm", "h100-80gb")),
    GpuSpec(key="h200", name="NVIDIA H200 SXM 141GB", hbm_gbps=4800.0, bf16_dense_tflops=989.0, mem_gib=141.0,
            tdp_w=700.0, idle_w=None, interconnect_gbps=900.0, interconnect="NVLink 4",
            sources={"hbm_gbps": "docs/power.md §4.2 [S]", "bf16_dense_tflops": "docs/power.md §4.2 [S] (same die as H100)",
                     "mem_gib": "docs/power.md §4.2 [S]", "tdp_w": "docs/power.md §4.2 [S]",
                     "interconnect_gbps": H200_DATASHEET + ": NVLink 900 GB/s"},
            notes=("idle_w: None — no published idle figure in our references",),
            aliases=("h200-sxm",)),
    GpuSpec(key="b200", name="NVIDIA B200 (HGX, 1,000 W)", hbm_gbps=8000.0, bf16_dense_tflops=2250.0, mem_gib=180.0,
            tdp_w=1000.0, idle_w=None, interconnect_gbps=1800.0, interconnect="NVLink 5",
            sources={"hbm_gbps": "docs/power.md §4.2 [P]", "bf16_dense_tflops": "docs/power.md §4.2 [P]; " + KLOCKWOOD_B200,
                     "mem_gib": B200_GUIDE, "tdp_w": "docs/power.md §4.2 [P]",
                     "interconnect_gbps": KLOCKWOOD_B200 + ": 2 x 900 GB/s NVLink 5"},
            notes=("idle_w: None — no published idle figure in our references",
                   "mem_gib: 180 per GPU from the DGX B200 guide; often quoted as 192 GB (the full HBM stacks)"),
            aliases=("hgx-b200",)),
    GpuSpec(key="l40s", name="NVIDIA L40S", hbm_gbps=864.0, bf16_dense_tflops=362.05, mem_gib=48.0,
            tdp_w=350.0, idle_w=None, interconnect_gbps=64.0, interconnect="PCIe Gen4 x16 (no NVLink)",
            sources={"hbm_gbps": L40S_DATASHEET + ": 864 GB/s GDDR6 (not HBM)",
                     "bf16_dense_tflops": L40S_DATASHEET + ": BF16 362.05 (733 with sparsity)",
                     "mem_gib": L40S_DATASHEET + ": 48 GB GDDR6 with ECC",
                     "tdp_w": L40S_DATASHEET + ": max power 350 W",
                     "interconnect_gbps": L40S_DATASHEET + ": PCIe Gen4 x16 64 GB/s bidirectional"},
            notes=("idle_w: None — no published idle figure in our references",
                   "some third-party tables list 183 TFLOP/s dense BF16; NVIDIA's datasheet says 362.05",
                   "tensor parallelism runs over PCIe: the TP term uses 32 GB/s each way"),
            aliases=("l40s-48gb",)),
)}


def gpu_names() -> list[str]:
    return list(GPUS)


def get_gpu(name: str) -> GpuSpec:
    """A catalog row by key or alias (case-insensitive); one-line error listing the valid names."""
    k = name.strip().lower()
    for g in GPUS.values():
        if k == g.key or k in g.aliases:
            return g
    raise InputError(f"--to {name!r}: unknown GPU: expected one of {', '.join(GPUS)} (or local-cpu for a CPU profile)")


_DEVICE_PATTERNS = (  # torch/NVML device names -> catalog key (first match wins)
    (r"a100.*80\s*gb", "a100-80gb"), (r"a100", "a100-40gb"), (r"h200", "h200"), (r"h100", "h100"),
    (r"b200", "b200"), (r"l40s", "l40s"),
)


def gpu_for_device(device_name: str) -> GpuSpec | None:
    """The catalog row for a device name such as ``NVIDIA A100-SXM4-40GB`` (None if not in the catalog)."""
    low = device_name.lower()
    for pattern, key in _DEVICE_PATTERNS:
        if re.search(pattern, low):
            return GPUS[key]
    return None


# ------------------------------------------------------------------------------ local CPU row

@dataclass(frozen=True, kw_only=True)
class CpuPeaks:
    """Peak rates measured on the calibration host with the calibration's thread count."""

    fp32_gflops: float
    mem_gbps: float
    threads: int
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"fp32_gflops": self.fp32_gflops, "mem_gbps": self.mem_gbps, "threads": self.threads,
                "method": self.method}


def cpu_peaks_from(prov: dict[str, Any], where: str) -> CpuPeaks | None:
    d = prov.get("cpu_peaks")
    if d is None:
        return None
    try:
        peaks = CpuPeaks(fp32_gflops=float(d["fp32_gflops"]), mem_gbps=float(d["mem_gbps"]),
                         threads=int(d.get("threads", 1)), method=str(d.get("method", "")))
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{where}: provenance.cpu_peaks = {d!r}: expected fp32_gflops and mem_gbps numbers") from None
    if not (peaks.fp32_gflops > 0 and peaks.mem_gbps > 0):
        raise InputError(f"{where}: provenance.cpu_peaks = {d!r}: expected rates > 0")
    return peaks


def cpu_spec(device_name: str, mem_gib: float, peaks: CpuPeaks) -> GpuSpec:
    """The "local CPU" row: the profile's own device, with peaks measured there (not a datasheet)."""
    measured = f"measured at calibration ({peaks.method or 'microbenchmark'}, {peaks.threads} thread(s)) [M]"
    return GpuSpec(key="local-cpu", name=device_name, kind="cpu", hbm_gbps=peaks.mem_gbps,
                   bf16_dense_tflops=peaks.fp32_gflops / 1000.0, mem_gib=mem_gib, tdp_w=None, idle_w=None,
                   interconnect_gbps=None, interconnect="none",
                   sources={"hbm_gbps": "DRAM copy bandwidth " + measured,
                            "bf16_dense_tflops": "fp32 matmul rate " + measured + " (the CPU runs fp32, not BF16)",
                            "mem_gib": "the profile's hardware.mem_gib_per_device (RAM)"},
                   notes=("no datasheet: peaks are achieved rates of one microbenchmark, so efficiencies against "
                          "them are CPU efficiencies, not comparable with a GPU's",
                          "tdp_w, idle_w: None — no published figure for this CPU"))
