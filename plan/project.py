"""Scale a simulated cluster to a daily query volume, beside the paper's own formula.

Two answers for the same workload:

* **Paper's formula** (docs/paper.md §2.10, §3): run each query *alone* on one replica (no batching),
  take its GPU energy (Wh/query, tool-idle time included), then P = Wh/query × queries/day / 24 h.
  GPU only, PUE 1, no host, no idle servers, no peak.
* **Simulated projection**: the scenario as written is a representative cluster at a realistic
  load. Its sessions per second per replica and its facility power per replica (GPUs + host +
  network, × PUE, idle included) scale linearly to the replicas the daily volume needs:
  replicas = ceil(queries/s ÷ sessions/s per replica). Average and P95 power scale the same way.
"""
from __future__ import annotations

import math
from dataclasses import replace

from agentwatt.sim.run import run
from agentwatt.sim.scenario import Scenario, WorkloadClass

ALONE_SESSIONS = 30


def single_query_scenario(sc: Scenario, sessions: int = ALONE_SESSIONS) -> Scenario:
    """The same workload classes, one session at a time, on one replica (the paper's method)."""
    classes = tuple(WorkloadClass(agent=w.agent, knobs=w.knobs, mix=w.mix, mix_knobs=w.mix_knobs, arrival="closed",
                                  concurrency=1, sessions=sessions)
                    for w in sc.workload if w.trace is None)
    if not classes:
        classes = sc.workload
    return replace(sc, fleet=replace(sc.fleet, replicas=1), workload=classes[:1],
                   run=replace(sc.run, duration_s=1e9, drain_timeout_s=1e9))


def project(sc: Scenario, queries_per_day: float) -> dict:
    rep = run(sc)
    s = rep.summary
    if not s.get("energy_available"):
        return {"error": f"profile has no power model ({s.get('energy_unavailable_reason')})"}
    t = s["sim_time_s"]
    per_replica_rate = s["sessions_completed"] / t / sc.fleet.replicas if t > 0 else 0.0
    qps = queries_per_day / 86400.0
    replicas = math.ceil(qps / per_replica_rate) if per_replica_rate > 0 else None
    tp = rep.profile.hardware.tp
    scale = replicas / sc.fleet.replicas if replicas else None
    from agentwatt.sim.facility import server_for
    servers = math.ceil(replicas * tp / server_for(sc.facility, rep.profile).gpus) if replicas else None
    alone = run(single_query_scenario(sc)).summary
    wh_alone = alone["gpu_energy_j"] / alone["sessions_completed"] / 3600 if alone["sessions_completed"] else None
    from agentwatt.sim.facility import paper_formula_power_w
    return {
        "queries_per_day": queries_per_day,
        "paper_formula": {
            "wh_per_query_alone": wh_alone,
            "latency_alone_s_mean": alone["session_e2e_s"]["mean"],
            "power_w": paper_formula_power_w(wh_alone, queries_per_day) if wh_alone else None,
            "assumptions": "one query at a time on one replica (no batching); GPU energy only; PUE 1; "
                           "no host, network or idle servers; average power, no peak",
        },
        "simulated": {
            "sessions_per_s_per_replica": per_replica_rate,
            "replicas": replicas, "gpus": replicas * tp if replicas else None, "servers": servers,
            "facility_avg_power_w": s["facility_avg_power_w"] * scale if scale else None,
            "facility_p95_power_w": s["facility_power"]["p95_w"] * scale if scale else None,
            "gpu_avg_power_w": s["gpu_avg_power_w"] * scale if scale else None,
            "facility_wh_per_query": s["facility_energy_per_session_j"] / 3600 if s["facility_energy_per_session_j"] else None,
            "gpu_wh_per_query": s["gpu_energy_per_session_with_idle_j"] / 3600 if s["gpu_energy_per_session_with_idle_j"] else None,
            "session_e2e_p99_s": s["session_e2e_s"]["p99"],
            "assumptions": (f"the scenario's load per replica ({per_replica_rate:.3g} sessions/s) holds at scale; "
                            f"batching, idle GPU time, host power (idle + {sc.facility.host_dynamic_fraction:g} × GPU power above idle), PUE "
                            f"{sc.facility.pue if isinstance(sc.facility.pue, float) else 'hourly'} included; "
                            f"power scales linearly with replicas (no diurnal shape beyond the scenario's)"),
        },
    }
