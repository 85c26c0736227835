"""A site as cells: ``[site] cells = K`` splits the fleet into K clusters, each behind its own router.

It models a site built as several clusters, each with its own load balancer, and it is what lets
one simulation spread over many cores: cells share no state, so each is an ordinary run of its own
scenario, and the results merge exactly.

The split rule (``cell_scenario``):

* replicas (and spare replicas) as evenly as possible: the first ``replicas % K`` cells get one more;
* open-loop arrivals in proportion to the cell's replicas: every rate of a class (``rate_per_s``,
  an MMPP's ``rates_per_s``; a diurnal curve's mean) is multiplied by ``replicas_c / replicas``. A
  Poisson stream sent to cell c with probability p_c is a Poisson stream of rate p_c × rate,
  independent of the others (Poisson thinning), so the K streams are the site's stream split at
  random by a front load balancer weighting cells by size;
* closed-loop users (``concurrency``, ``sessions``) as evenly as the replicas;
* cell c draws from its own seed, ``cell_seed(seed, c)``.

Trace replays are not split (a trace is one recorded stream): ``check_splittable`` says so.

The merge (``merge``): call and session rows are concatenated (replica and session ids offset so
they stay unique, a ``cell`` column added) and the summary is computed from the merged rows, so
percentiles are the site's, not averages of cells'. Power is summed on one time grid: the site
runs until its last cell ends, and a cell that ended earlier idles until then (its GPUs' idle
watts, booked in its replicas' counters too), so energy is conserved. Each cell's own figures
are kept under ``summary["cells"]``. ``run_cells`` runs the cells one after another, or as tasks
on a ``dask.distributed`` client; both give the same results (the merge does not depend on where
or in which order cells ran).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from agentwatt.core.errors import InputError
from agentwatt.sim.scenario import Scenario, SiteConfig, WorkloadClass


def check_splittable(classes: Sequence[WorkloadClass], cells: int, where: str) -> None:
    """Every workload class can be split among ``cells`` cells (a one-line error otherwise)."""
    for i, wc in enumerate(classes):
        table = f"[site] cells = {cells}: [workload #{i + 1}]"
        if wc.trace is not None or wc.arrival == "trace":
            raise InputError(f"{where}: {table} replays recorded arrivals, which are not split among cells: "
                             f"expected generated classes (agent = or mix = with an arrival process), or cells = 1")
        if wc.arrival == "closed" and (wc.concurrency < cells or (wc.sessions is not None and wc.sessions < cells)):
            raise InputError(f"{where}: {table} concurrency = {wc.concurrency}, sessions = {wc.sessions}: "
                             f"expected at least one user and one session per cell")


def shares(total: int, cells: int) -> list[int]:
    """``total`` split into ``cells`` integers as evenly as possible, larger ones first."""
    return [total // cells + (1 if c < total % cells else 0) for c in range(cells)]


def cell_seed(seed: int, cell: int) -> int:
    """Cell ``cell``'s seed: a 63-bit draw from ``SeedSequence([seed, cell])``."""
    return int(np.random.SeedSequence([seed, cell]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _scaled(wc: WorkloadClass, share: float, cell: int, cells: int) -> WorkloadClass:
    if wc.arrival == "closed":
        return replace(wc, concurrency=shares(wc.concurrency, cells)[cell],
                       sessions=None if wc.sessions is None else shares(wc.sessions, cells)[cell])
    params = dict(wc.arrival_params)
    if "rate_per_s" in params:
        params["rate_per_s"] = params["rate_per_s"] * share
    if "rates_per_s" in params:
        params["rates_per_s"] = [r * share for r in params["rates_per_s"]]
    return replace(wc, rate_per_s=None if wc.rate_per_s is None else wc.rate_per_s * share, arrival_params=params)


def cell_scenario(sc: Scenario, cell: int) -> Scenario:
    """Cell ``cell`` of ``sc`` as a scenario of its own (see the split rule in the module docstring)."""
    k = sc.site.cells
    reps = shares(sc.fleet.replicas, k)[cell]
    share = reps / sc.fleet.replicas
    return replace(sc, name=f"{sc.name} [cell {cell + 1}/{k}]", site=SiteConfig(),
                   run=replace(sc.run, seed=cell_seed(sc.run.seed, cell)),
                   fleet=replace(sc.fleet, replicas=reps, spare_replicas=shares(sc.fleet.spare_replicas, k)[cell]),
                   workload=tuple(_scaled(wc, share, cell, k) for wc in sc.workload))


def run_cell(sc: Scenario, cell: int, profile: Any = None):
    """The task: simulate cell ``cell`` of ``sc`` (``sim.run.simulate``); returns its ``RunParts``."""
    from agentwatt.sim.run import simulate
    p = simulate(cell_scenario(sc, cell), profile)
    p.wall_s = round(time.perf_counter() - p.wall0, 3)   # this cell's own wall time, where it ran
    return p


def run_cells(sc: Scenario, profile: Any = None, client: Any = None):
    """Simulate every cell of ``sc`` (in this process, or as tasks on a ``dask.distributed``
    ``client``) and merge them into one ``Results``."""
    from agentwatt.sim.run import results_of
    wall0 = time.perf_counter()
    k = sc.site.cells
    if client is None:
        parts = [run_cell(sc, c, profile) for c in range(k)]
    else:
        futures = [client.submit(run_cell, sc, c, profile, pure=False) for c in range(k)]
        parts = client.gather(futures)
    merged = merge(sc, parts)
    merged.wall0 = wall0
    res = results_of(merged)
    res.summary["cells"] = [_cell_figures(c, p) for c, p in enumerate(parts)]
    return res


def _cell_figures(cell: int, p) -> dict[str, Any]:
    from agentwatt.sim.report import call_metrics, session_metrics
    fin_c = p.calls[p.calls["status"] == "finished"]
    fin_s = p.sessions[p.sessions["status"] == "finished"]
    ttft = call_metrics(fin_c)["ttft_s"] if len(fin_c) else []
    e2e = session_metrics(fin_s)["e2e_s"] if len(fin_s) else []
    return {"cell": cell, "replicas": len(p.replicas), "seed": p.scenario.run.seed, "sim_time_s": p.t_end,
            "sessions_arrived": p.counts.sessions_arrived, "sessions_completed": p.counts.sessions_finished,
            "calls_submitted": p.counts.calls_submitted, "ttft_p99_s": _p99(ttft), "session_e2e_p99_s": _p99(e2e),
            "gpu_energy_j": float(p.replicas["busy_energy_j"].sum() + p.replicas["idle_energy_j"].sum()),
            "wall_time_s": p.wall_s, **p.blocks}   # a host KV tier's and prefix-aware routing's blocks, per cell


def _p99(x) -> float | None:
    return float(np.percentile(x, 99)) if len(x) else None


def _grid(end_s: float, res: float) -> tuple[np.ndarray, np.ndarray]:
    """Bin start times and widths up to ``end_s`` (the convention of ``metrics.TimeBins.columns``)."""
    n = max(1, math.ceil(end_s / res - 1e-12))
    t = np.arange(n) * res
    width = np.minimum(res, end_s - t)
    width[width <= 0] = res
    return t, width


class _IdleBins:
    """One bin of a replica with no step running (``metrics.TimeBins.columns``' interface)."""

    def __init__(self, idle_w: float, res: float) -> None:
        self.idle_w, self.res = idle_w, res

    def columns(self, end_s: float):
        from agentwatt.sim.metrics import REPLICA_CHANNELS
        cols = {c: np.zeros(1) for c in REPLICA_CHANNELS}
        cols["energy_j"] = np.array([self.idle_w * self.res])
        cols["idle_empty_s"] = np.array([self.res])
        return np.zeros(1), np.array([self.res]), cols


# FleetPower's per-bin sums of seconds (GPU-seconds per state, KV block- and sequence-seconds)
_SECONDS = ("busy_s", "idle_tool_s", "idle_empty_s", "capped_s", "kv_block_s", "batch_s")


def _pad_power(p, t_end: float, res: float):
    """Cell ``p``'s fleet power on the grid up to ``t_end``, idle after the cell's own end."""
    from agentwatt.core.step import state_power_w
    from agentwatt.sim.facility import fleet_power, pue_at
    sc, fp = p.scenario, p.power
    spare = sc.fleet.spare_replicas
    idle = fleet_power([_IdleBins(p.idle_w, res) for _ in range(len(p.replicas))], p.profile.hardware.tp,
                       p.profile.power.idle_w, sc.facility, res, spare_replicas=spare,
                       spare_state=sc.fleet.spare_state,
                       spare_w_per_gpu=state_power_w(p.profile, sc.fleet.spare_state) if spare else 0.0)
    t, width = _grid(t_end, res)
    n_c = len(fp.time_s)
    own = np.zeros(len(t))
    own[:n_c] = fp.width_s
    extra = np.maximum(width - own, 0.0)   # seconds of each merged bin after the cell's end

    def watts(x: np.ndarray, x_idle: np.ndarray) -> np.ndarray:
        e = np.zeros(x.shape[:-1] + (len(t),))
        e[..., :n_c] = x * fp.width_s
        return (e + x_idle[..., None] * extra) / width

    def seconds(x: np.ndarray, x_idle: np.ndarray) -> np.ndarray:
        out = np.zeros(len(t))
        out[:n_c] = x
        return out + x_idle[0] / res * extra

    return replace(fp, time_s=t, width_s=width, pue=pue_at(sc.facility.pue, t),
                   gpu_w=watts(fp.gpu_w, idle.gpu_w[..., 0]), host_w=watts(fp.host_w, idle.host_w[..., 0]),
                   network_w=watts(fp.network_w, idle.network_w[..., 0]),
                   server_it_w=watts(fp.server_it_w, idle.server_it_w[..., 0]),
                   rack_it_w=watts(fp.rack_it_w, idle.rack_it_w[..., 0]),
                   **{c: seconds(getattr(fp, c), getattr(idle, c)) for c in _SECONDS
                      if getattr(fp, c) is not None})


def merge(sc: Scenario, parts: list):
    """One ``RunParts`` for the whole site from its cells' parts (see the module docstring)."""
    from agentwatt.sim.metrics import RunCounts
    from agentwatt.sim.run import RunParts
    t_end = max(p.t_end for p in parts)
    res = sc.run.power_resolution_s
    calls, sessions, reps, steps = [], [], [], []
    rep_off = sess_off = 0
    for c, p in enumerate(parts):
        calls.append(p.calls.assign(session_id=p.calls["session_id"] + sess_off,
                                    replica=p.calls["replica"] + rep_off, cell=c))
        sessions.append(p.sessions.assign(session_id=p.sessions["session_id"] + sess_off, cell=c))
        pad = (p.idle_w or 0.0) * (t_end - p.t_end) if p.idle_w is not None else float("nan")
        r = p.replicas.assign(replica=p.replicas["replica"] + rep_off, cell=c)
        r["idle_energy_j"] = r["idle_energy_j"] + pad
        r["energy_bins_j"] = r["energy_bins_j"] + pad
        reps.append(r)
        if p.steps is not None:
            steps.append(p.steps.assign(replica=p.steps["replica"] + rep_off))
        rep_off += len(p.replicas)
        sess_off += max(p.counts.sessions_arrived, int(p.sessions["session_id"].max()) + 1 if len(p.sessions) else 0)
    counts = RunCounts(**{f: sum(getattr(p.counts, f) for p in parts) for f in RunCounts.__dataclass_fields__})
    power = None
    if all(p.power is not None for p in parts):
        padded = [_pad_power(p, t_end, res) for p in parts]
        f0 = padded[0]
        power = replace(f0, **{a: sum(getattr(f, a) for f in padded) for a in
                               ("gpu_w", "host_w", "network_w", "gpus", "spare_gpus", "spare_gpu_w", *_SECONDS)
                               if getattr(f0, a) is not None},
                        server_it_w=np.vstack([f.server_it_w for f in padded]),
                        rack_it_w=np.vstack([f.rack_it_w for f in padded]))
    st = None
    if steps:
        st = pd.concat(steps, ignore_index=True).sort_values(["start_s", "replica"], kind="stable", ignore_index=True)
    return RunParts(scenario=replace(sc, facility=parts[0].scenario.facility), profile=parts[0].profile,
                    calls=pd.concat(calls, ignore_index=True), sessions=pd.concat(sessions, ignore_index=True),
                    replicas=pd.concat(reps, ignore_index=True), counts=counts, power=power, t_end=t_end,
                    idle_w=parts[0].idle_w, steps=st, wall0=min(p.wall0 for p in parts))
