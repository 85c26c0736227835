"""From GPU watts to facility watts: servers, racks, rows, host power, PUE, caps, carbon, cost.

Pure functions over the per-replica time bins a run produced (no SimPy). The hierarchy is
datacenter → rows → racks → servers → GPUs → replicas: replica i occupies GPUs
[i·tp, (i+1)·tp) in order, ``gpus_per_server`` GPUs to a server, ``servers_per_rack`` servers to a
rack. A tensor-parallel replica never spans servers (checked when the scenario is read).

Host power per server (CPUs, memory, NICs, NVSwitch, fans, PSU loss) follows docs/power.md §5.5's
fleet equation: ``P_host = P_host_idle + α·Σ_gpus (P_gpu − P_gpu_idle)``, α = ``host_dynamic_fraction``
(0.3, the middle of the 0.2–0.4 docs/power.md derives from Google's measured host ≈ 0.43 × accelerator
energy). A server only partly filled by the fleet (the last one) draws host idle in proportion to
the GPUs it holds, like a cloud VM slice (the paper's a2-highgpu-1g is 1 of 8 A100s of a host).
The server is ``[facility] server`` when the scenario sets it, else the one the profile's GPU ships
in (``GPU_SERVERS``); the summary warns when its GPUs are not the profile's, and when simulated P95
power exceeds the nameplate. Facility power = PUE × (GPU + host + network). Fan et al.'s curve (docs/power.md §5.4) needs CPU
utilisation, which the simulator does not model, so it is not used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agentwatt.core.errors import InputError



@dataclass(frozen=True, kw_only=True)
class ServerSpec:
    name: str
    gpus: int
    nameplate_w: float     # rated maximum of the whole server
    gpu_tdp_w: float
    host_idle_w: float     # non-GPU power with the server idle
    sources: str


SERVER_SPECS = {
    # DGX A100: 6.5 kW rated (docs/power.md §5.1 [S/P]).
    # Idle: SplitwiseSim's 1.5 kW server idle (docs/power.md §5.1 [P]) minus 8 × 63 W GPU idle → 996 W host [I].
    "dgx-a100": ServerSpec(name="dgx-a100", gpus=8, nameplate_w=6500.0, gpu_tdp_w=400.0,
                           host_idle_w=1500.0 - 8 * 63.0,
                           sources="DGX A100 6.5 kW (docs/power.md §5.1); SplitwiseSim server idle 1.5 kW, GPU idle 63 W"),
    # DGX H100/H200: 10.2 kW rated (docs/power.md §5.1 [P]).
    # Idle: SplitwiseSim's 2.8 kW minus 8 × 75 W GPU idle → 2.2 kW host [I].
    "dgx-h100": ServerSpec(name="dgx-h100", gpus=8, nameplate_w=10200.0, gpu_tdp_w=700.0,
                           host_idle_w=2800.0 - 8 * 75.0,
                           sources="DGX H100 10.2 kW (docs/power.md §5.1); SplitwiseSim server idle 2.8 kW, GPU idle 75 W"),
    # DGX B200: 14.3 kW rated (docs/power.md §5.1 [P]). No published
    # idle figure in our references: SplitwiseSim's 2.8 kW for non-A100 servers, less 8 × 75 W [I, estimate].
    "dgx-b200": ServerSpec(name="dgx-b200", gpus=8, nameplate_w=14300.0, gpu_tdp_w=1000.0,
                           host_idle_w=2800.0 - 8 * 75.0,
                           sources="DGX B200 14.3 kW (docs/power.md §5.1); idle borrowed from SplitwiseSim's non-A100 value"),
}


# The server each catalog GPU (core/gpus.py key) ships in; a GPU with no row here (L40S, a CPU
# profile) is sized on FALLBACK_SERVER with a warning in the summary.
GPU_SERVERS = {"a100-40gb": "dgx-a100", "a100-80gb": "dgx-a100", "h100": "dgx-h100", "h200": "dgx-h100",
               "b200": "dgx-b200"}
FALLBACK_SERVER = "dgx-a100"


def server_name_for(fac, profile) -> str:
    """``[facility] server`` when the scenario sets it, else the server of the profile's GPU."""
    if fac.server is not None:
        return fac.server
    from agentwatt.core.gpus import gpu_for_device
    g = gpu_for_device(profile.hardware.device_name) if profile.hardware.kind == "gpu" else None
    return GPU_SERVERS.get(g.key, FALLBACK_SERVER) if g is not None else FALLBACK_SERVER


def server_for(fac, profile) -> ServerSpec:
    return server_spec(server_name_for(fac, profile))


def with_server(fac, profile):
    """``fac`` with its server resolved for ``profile`` (``server_name_for``)."""
    from dataclasses import replace
    return fac if fac.server is not None else replace(fac, server=server_name_for(fac, profile))


def server_warnings(fac, profile) -> list[str]:
    """A warning when the server a run is sized on holds GPUs of another TDP than the profile's
    (a server set by the scenario, or the fallback for a GPU without a server row)."""
    from agentwatt.core.gpus import gpu_for_device
    spec = server_for(fac, profile)
    hw = profile.hardware
    if hw.kind != "gpu":
        return []
    g = gpu_for_device(hw.device_name)
    tdp = hw.tdp_w_per_device or (g.tdp_w if g is not None else None)
    if tdp is not None and tdp != spec.gpu_tdp_w:
        return [f"[facility] server = {spec.name!r} holds {spec.gpu_tdp_w:g} W GPUs, the profile's "
                f"{hw.device_name} is {tdp:g} W: host power and nameplate describe another server"]
    return []


def server_spec(name: str) -> ServerSpec:
    if name is None:
        raise InputError("[facility] server unset: resolve it for the profile first (sim/facility.py with_server)")
    spec = SERVER_SPECS.get(name)
    if spec is None:
        raise InputError(f"[facility] server = {name!r}: expected one of {', '.join(sorted(SERVER_SPECS))}")
    return spec


def host_power_w(gpu_w: np.ndarray, n_gpus: int, gpu_idle_w: float, spec: ServerSpec, alpha: float) -> np.ndarray:
    """Host watts of a server holding ``n_gpus`` GPUs that draw ``gpu_w`` together (see module doc)."""
    return spec.host_idle_w * n_gpus / spec.gpus + alpha * np.maximum(gpu_w - n_gpus * gpu_idle_w, 0.0)


def pue_at(pue: float | tuple[float, ...], t_s: np.ndarray) -> np.ndarray:
    """PUE per bin: a constant, or 24 hourly values repeated daily (t = 0 is midnight)."""
    if isinstance(pue, (int, float)):
        return np.full(len(t_s), float(pue))
    hours = (np.asarray(t_s) // 3600).astype(int) % 24
    return np.asarray(pue, dtype=float)[hours]


@dataclass
class FleetPower:
    """Per-bin power of the fleet, and the same per server and per rack (W)."""

    time_s: np.ndarray
    width_s: np.ndarray
    gpu_w: np.ndarray
    host_w: np.ndarray
    network_w: np.ndarray
    pue: np.ndarray
    server_it_w: np.ndarray     # shape (servers, bins)
    rack_it_w: np.ndarray       # shape (racks, bins)
    gpus: int
    busy_s: np.ndarray
    idle_tool_s: np.ndarray
    idle_empty_s: np.ndarray
    capped_s: np.ndarray
    spare_gpus: int = 0               # provisioned GPUs serving nothing, in one power state
    spare_state: str = "parked"
    spare_gpu_w: float = 0.0          # their watts together (a constant)
    kv_block_s: np.ndarray | None = None   # KV blocks in use × seconds, all replicas (per bin)
    batch_s: np.ndarray | None = None      # sequences in the running step × seconds, all replicas

    @property
    def it_w(self) -> np.ndarray:
        return self.gpu_w + self.host_w + self.network_w

    @property
    def facility_w(self) -> np.ndarray:
        return self.pue * self.it_w

    def frame(self, observed_gpu_w: np.ndarray | None = None) -> pd.DataFrame:
        extra = {"gpu_power_observed_w": observed_gpu_w} if observed_gpu_w is not None else {}
        return pd.DataFrame({"time_s": self.time_s, "gpu_power_w": self.gpu_w, **extra, "host_power_w": self.host_w,
                             "network_power_w": self.network_w, "it_power_w": self.it_w, "pue": self.pue,
                             "facility_power_w": self.facility_w, "busy_gpu_s": self.busy_s,
                             "idle_tool_gpu_s": self.idle_tool_s, "idle_empty_gpu_s": self.idle_empty_s,
                             # time-averaged over each bin, summed over the replicas
                             **({"kv_blocks_in_use": self.kv_block_s / self.width_s,
                                 "sequences_in_batch": self.batch_s / self.width_s} if self.kv_block_s is not None
                                else {})})


def fleet_power(replica_bins: list, tp: int, gpu_idle_w: float | None, fac, end_s: float, *,
                spare_replicas: int = 0, spare_w_per_gpu: float = 0.0, spare_state: str = "parked") -> FleetPower:
    """Aggregate per-replica bins into servers, racks and the site (see module docstring). Spare
    replicas fill the servers after the serving ones and draw ``spare_w_per_gpu`` per GPU throughout
    (their host draws its idle share)."""
    spec = server_spec(fac.server)
    per_server = spec.gpus // tp                      # replicas per server
    n_all = len(replica_bins) + spare_replicas
    n_servers = math.ceil(n_all / per_server)
    n_racks = math.ceil(n_servers / fac.servers_per_rack)
    t, width, _ = replica_bins[0].columns(end_s)
    n = len(t)
    server_gpu_w = np.zeros((n_servers, n))
    tot = {c: np.zeros(n) for c in ("busy_s", "idle_tool_s", "idle_empty_s", "capped_s", "kv_block_s", "batch_s")}
    for i, b in enumerate(replica_bins):
        _, _, cols = b.columns(end_s)
        srv = i // per_server
        server_gpu_w[srv] += cols["energy_j"] / width
        for c in tot:
            tot[c] += cols[c] * (1 if c in ("kv_block_s", "batch_s") else tp)
    for i in range(len(replica_bins), n_all):
        server_gpu_w[i // per_server] += spare_w_per_gpu * tp
    gpus_in_server = np.array([min(spec.gpus, (n_all - s * per_server) * tp) for s in range(n_servers)])
    server_host_w = np.stack([host_power_w(server_gpu_w[k], int(gpus_in_server[k]), gpu_idle_w, spec,
                                           fac.host_dynamic_fraction) for k in range(n_servers)])
    if spare_state == "off":   # a server holding only spare replicas that are off is off, host included
        first_all_spare = math.ceil(len(replica_bins) / per_server)
        server_host_w[first_all_spare:] = 0.0
    server_it = server_gpu_w + server_host_w
    rack_it = np.zeros((n_racks, n))
    for s in range(n_servers):
        rack_it[s // fac.servers_per_rack] += server_it[s]
    network = np.full(n, fac.network_w_per_rack * n_racks)
    rack_it += fac.network_w_per_rack
    return FleetPower(time_s=t, width_s=width, gpu_w=server_gpu_w.sum(0), host_w=server_host_w.sum(0),
                      network_w=network, pue=pue_at(fac.pue, t), server_it_w=server_it, rack_it_w=rack_it,
                      gpus=len(replica_bins) * tp, spare_gpus=spare_replicas * tp, spare_state=spare_state,
                      spare_gpu_w=spare_replicas * tp * spare_w_per_gpu, **tot)


def rows_of(fp: FleetPower, fac) -> np.ndarray:
    """IT power per row (rows × bins): ``racks_per_row`` racks each, or as many as the row limit
    holds at nameplate when unset."""
    spec = server_spec(fac.server)
    per_row = fac.racks_per_row or max(1, int(fac.row_power_limit_w // (fac.servers_per_rack * spec.nameplate_w
                                                                          + fac.network_w_per_rack)))
    n_rows = math.ceil(fp.rack_it_w.shape[0] / per_row)
    out = np.zeros((n_rows, fp.rack_it_w.shape[1]))
    for r in range(fp.rack_it_w.shape[0]):
        out[r // per_row] += fp.rack_it_w[r]
    return out


def levels_frame(fp: FleetPower, fac) -> pd.DataFrame:
    """Long table of IT power per rack and per row: time_s, level, index, it_power_w."""
    parts = []
    for level, arr in (("rack", fp.rack_it_w), ("row", rows_of(fp, fac))):
        n, b = arr.shape
        parts.append(pd.DataFrame({"time_s": np.tile(fp.time_s, n), "level": level,
                                   "index": np.repeat(np.arange(n), b), "it_power_w": arr.reshape(-1)}))
    return pd.concat(parts, ignore_index=True)


def gpu_power_bounds(profile, gpus: int) -> tuple[float, float]:
    """(lowest, highest) watts ``gpus`` GPUs of ``profile`` can draw: idle (parked when lower) and TDP
    (the power model's max, else the hardware's or the catalog's TDP; infinite when none is known)."""
    from agentwatt.core.gpus import gpu_for_device
    pm, hw = profile.power, profile.hardware
    lo = min(pm.idle_w, pm.parked_w) if pm.parked_w is not None else pm.idle_w
    g = gpu_for_device(hw.device_name) if hw.kind == "gpu" else None
    hi = pm.max_w or hw.tdp_w_per_device or (g.tdp_w if g is not None else None)
    return gpus * lo, gpus * hi if hi else math.inf


def observed_gpu_power(gpu_w: np.ndarray, resolution_s: float, fac, seed: int,
                       bounds_w: tuple[float, float] = (0.0, math.inf)) -> np.ndarray | None:
    """The fleet GPU series as a meter would show it: AR(1) noise (seeded), clipped to what the GPUs
    can draw (``bounds_w``: ``gpu_power_bounds``), then a moving average (which stays inside them)."""
    if fac.gpu_noise_frac <= 0 and fac.meter_window_s <= 0:
        return None
    x = gpu_w.astype(float).copy()
    if fac.gpu_noise_frac > 0:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9E3779B9]))
        phi = math.exp(-resolution_s / fac.gpu_noise_corr_s)
        eps = rng.standard_normal(len(x)) * math.sqrt(1 - phi * phi)
        z = np.empty(len(x))
        acc = rng.standard_normal()
        for i, e in enumerate(eps):
            acc = phi * acc + e
            z[i] = acc
        x = np.clip(x * (1.0 + fac.gpu_noise_frac * z), *bounds_w)
    win = int(round(fac.meter_window_s / resolution_s))
    if win > 1:  # causal moving average; the first bins average what exists so far
        c = np.concatenate([[0.0], np.cumsum(x)])
        i = np.arange(1, len(x) + 1)
        lo = np.maximum(0, i - win)
        x = (c[i] - c[lo]) / (i - lo)
    return np.clip(x, max(bounds_w[0], 0.0), bounds_w[1])


# ----------------------------------------------------------------------------- metrics

def _resample_mean(t: np.ndarray, w: np.ndarray, width: np.ndarray, window_s: float) -> np.ndarray:
    """Time-weighted means of a binned series over consecutive windows of ``window_s``."""
    idx = (t // window_s).astype(int)
    e = np.bincount(idx, weights=w * width)
    d = np.bincount(idx, weights=width)
    return e / np.where(d > 0, d, 1)


def series_metrics(t: np.ndarray, w: np.ndarray, width: np.ndarray, resolution_s: float) -> dict:
    """Utility-style metrics of a power series (W): peak, P95 peak, mean, peak-to-average, load
    factor, largest 15-minute ramp, annual MWh at this mean (docs/power.md §8)."""
    x = _resample_mean(t, w, width, resolution_s) if resolution_s > 0 else w
    mean = float(np.sum(w * width) / np.sum(width))
    peak = float(x.max())
    q15 = _resample_mean(t, w, width, 900.0)
    ramp = float(np.abs(np.diff(q15)).max()) if len(q15) > 1 else None
    return {"resolution_s": resolution_s, "peak_w": peak, "p95_w": float(np.percentile(x, 95)), "mean_w": mean,
            "peak_to_average": peak / mean if mean > 0 else None, "load_factor": mean / peak if peak > 0 else None,
            "ramp_15min_w": ramp, "annual_mwh_at_mean": mean * 8760 / 1e6}


def provisioning(fp: FleetPower, fac, resolution_s: float) -> dict:
    """Nameplate (TDP) sizing against simulated sizing, per rack and per row (P95 risk rule)."""
    spec = server_spec(fac.server)
    n_servers, n_racks = fp.server_it_w.shape[0], fp.rack_it_w.shape[0]
    nameplate_it = fp.gpus / spec.gpus * spec.nameplate_w + n_racks * fac.network_w_per_rack
    it = series_metrics(fp.time_s, fp.it_w, fp.width_s, resolution_s)
    rack_p95 = [float(np.percentile(_resample_mean(fp.time_s, r, fp.width_s, resolution_s), 95))
                for r in fp.rack_it_w]
    rack_nameplate = fac.servers_per_rack * spec.nameplate_w + fac.network_w_per_rack
    per_rack_gpus = fac.servers_per_rack * spec.gpus
    gpus_in = [min(per_rack_gpus, fp.gpus - k * per_rack_gpus) for k in range(n_racks)]
    # a full rack's simulated P95, scaled from each rack by the GPUs it holds; the worst rack rules
    full_rack_p95 = max(p * per_rack_gpus / g for p, g in zip(rack_p95, gpus_in))
    row = fac.row_power_limit_w
    return {
        "servers": n_servers, "racks": n_racks, "server": spec.name,
        "nameplate_it_w": nameplate_it, "nameplate_facility_w": nameplate_it * float(np.max(fp.pue)),
        "simulated_it_p95_w": it["p95_w"], "simulated_it_peak_w": it["peak_w"],
        "simulated_p95_over_nameplate": it["p95_w"] / nameplate_it,
        "rack_nameplate_w": rack_nameplate, "rack_simulated_p95_w": full_rack_p95,
        "row_power_limit_w": row,
        "racks_per_row_by_nameplate": int(row // rack_nameplate),
        "racks_per_row_by_simulated_p95": int(row // full_rack_p95) if full_rack_p95 > 0 else None,
        "cap_binding_share_of_busy_time": (float(fp.capped_s.sum() / fp.busy_s.sum()) if fp.busy_s.sum() > 0 else None),
    }


def nameplate_warnings(fp: FleetPower, fac, resolution_s: float) -> list[str]:
    """Warnings when simulated P95 power exceeds the nameplate: of the worst server (its IT power
    against its rating, pro rata for a partly filled server) and of the whole fleet's IT power."""
    spec = server_spec(fac.server)
    out = []
    worst = max(range(fp.server_it_w.shape[0]), key=lambda k: _server_p95_share(fp, spec, k, resolution_s))
    ratio = _server_p95_share(fp, spec, worst, resolution_s)
    if ratio > 1.0:
        out.append(f"simulated P95 power of server {worst} is {ratio:.0%} of the {spec.name} nameplate "
                   f"({spec.nameplate_w:.0f} W): the server spec does not describe these GPUs, or they run "
                   "above their rating")
    prov = provisioning(fp, fac, resolution_s)
    if prov["simulated_p95_over_nameplate"] > 1.0:
        out.append(f"simulated P95 IT power {prov['simulated_it_p95_w']:.0f} W is "
                   f"{prov['simulated_p95_over_nameplate']:.0%} of the nameplate sizing "
                   f"({prov['nameplate_it_w']:.0f} W of {spec.name} servers)")
    return out


def _server_p95_share(fp: FleetPower, spec: ServerSpec, k: int, resolution_s: float) -> float:
    gpus = min(spec.gpus, fp.gpus - k * spec.gpus)
    p95 = float(np.percentile(_resample_mean(fp.time_s, fp.server_it_w[k], fp.width_s, resolution_s), 95))
    return p95 / (spec.nameplate_w * gpus / spec.gpus)


def paper_formula_power_w(wh_per_query: float, queries_per_day: float) -> float:
    """The paper's datacenter projection: P = (Wh/query) × (queries/day) / 24 h (docs/paper.md §2.10 [Q]).
    GPU only, PUE 1, no batching, no idle, no host."""
    return wh_per_query * queries_per_day / 24.0


def carbon_and_cost(energy_j_series: np.ndarray, t: np.ndarray, fac) -> dict:
    """gCO2e and $ for facility joules per bin, with a constant or hourly carbon intensity/price."""
    out: dict = {}
    kwh = energy_j_series / 3.6e6
    if fac.carbon_g_per_kwh is not None:
        ci = pue_at(fac.carbon_g_per_kwh, t)
        out["carbon_g"] = float(np.sum(kwh * ci))
    if fac.price_usd_per_kwh is not None:
        out["energy_cost_usd"] = float(np.sum(kwh * pue_at(fac.price_usd_per_kwh, t)))
    return out
