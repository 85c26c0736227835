"""Autoscaling: a day of agent load on a static fleet sized for the peak, and on an autoscaled one.

Covers: ``[autoscale]`` (Kubernetes-HPA-style target per replica, min/max, scale-up and scale-down
delays, warm-up = weight bytes / storage bandwidth + engine start, drawing idle power; stopped
replicas parked or off), ``Results.scaling`` (replicas per state over time), the summary's
``autoscale`` block (warm-up GPU-hours, stopped energy, TTFT p99 while replicas warm up).

Scenario: ReAct agents on HotpotQA (Llama-3.1-8B, A100-40GB replicas) arriving along the
ServeGen 24-hour rate curve (trough 0.66×, peak 1.46× the daily mean). The day is compressed
(24× here, 96× with ``--fast``) so that it runs in seconds; the autoscaler's own timings (15 s
period, 300 s scale-down window, ~41 s warm-up) are real, so its ramps are steeper than in a real
day: read the ramp p99 as pessimistic and the savings as a floor. First the autoscaled fleet runs
(1 to 5 replicas, target 4 calls in flight per ready replica) against a static fleet of 5,
sized for the peak, serving the same sessions. Look at the GPU-hours and
facility energy the autoscaler saves, what the parked replicas still draw (and with them off), and
the TTFT p99 of calls that arrived while replicas were warming up.
"""
from __future__ import annotations

import sys

import numpy as np
from _common import parse_args, plt, save

from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict
from agentwatt.traces.arrivals import DAY_S, diurnal_arrivals

MEAN_RATE_PER_S = 1.0      # compressed-day sessions per second (the daily mean)
AUTOSCALE = {"target_per_replica": 4, "min_replicas": 1}
REPLICAS = 5               # the static fleet, sized for the peak; the autoscaler's maximum


def day_arrivals(compress: float, seed: int = 7) -> list[float]:
    """Arrival times of one day on the ServeGen curve, the day compressed ``compress`` times."""
    rng = np.random.default_rng(seed)
    real = diurnal_arrivals(rng, MEAN_RATE_PER_S / compress, end_s=DAY_S)
    return [t / compress for t in real]


def _scenario(times: list[float], day_s: float, replicas: int, autoscale: dict | None):
    d = {"name": "diurnal react", "profile": "llama-3.1-8b_a100-40gb",
         "run": {"seed": 1, "duration_s": day_s, "drain_timeout_s": 600.0, "power_resolution_s": 10.0},
         "fleet": {"replicas": replicas},
         "workload": [{"agent": "react-hotpotqa", "arrival": "trace", "arrival_params": {"times": times}}]}
    if autoscale is not None:
        d["autoscale"] = autoscale
    return scenario_from_dict(d, "autoscaling example")


def _row(name: str, res, compress: float) -> dict:
    s = res.summary
    a = s.get("autoscale")
    gpu_h = (a["gpu_hours"]["ready"] + a["gpu_hours"]["warming"] + a["gpu_hours"]["draining"]) if a \
        else s["gpus"] * s["sim_time_s"] / 3600
    return {"name": name, "gpu_h": gpu_h, "fac_kwh": s["facility_energy_j"] / 3.6e6,
            "day_mwh": s["facility_energy_j"] / 3.6e9 * compress,
            "wh_session": s["facility_energy_j"] / 3600 / max(s["sessions_completed"], 1),
            "ttft_p99": s["ttft_s"]["p99"], "ramp_p99": (a or {}).get("ttft_p99_during_warmup_s"),
            "warm_h": a["warmup_gpu_hours"] if a else 0.0, "sessions": s["sessions_completed"]}


def main(argv: list[str] | None = None) -> None:
    out, fast = parse_args("autoscaling", __doc__, argv)
    compress = 96.0 if fast else 24.0
    times = day_arrivals(compress)
    peak = REPLICAS
    static = run(_scenario(times, DAY_S / compress, peak, None))
    auto = run(_scenario(times, DAY_S / compress, peak, AUTOSCALE))
    off = run(_scenario(times, DAY_S / compress, peak, {**AUTOSCALE, "stopped_state": "off"}))
    rows = [_row(f"static, {peak} replicas", static, compress),
            _row(f"autoscaled 1-{peak}, stopped = parked", auto, compress),
            _row(f"autoscaled 1-{peak}, stopped = off", off, compress)]
    print(f"one day compressed {compress:g}x ({len(times)} ReAct sessions), warm-up "
          f"{auto.summary['autoscale']['warmup_s']:.0f} s, {auto.summary['autoscale']['starts']} starts, "
          f"at most {auto.summary['autoscale']['ready_replicas']['max']} replicas ready")
    print(f"{'fleet':44s} {'GPU-h':>7s} {'kWh':>7s} {'MWh/day':>8s} {'Wh/sess':>8s} {'TTFT p99':>9s} "
          f"{'ramp p99':>9s} {'warm GPU-h':>10s}")
    for r in rows:
        ramp = "-" if r["ramp_p99"] is None else f"{r['ramp_p99']:.2f} s"
        print(f"{r['name']:44s} {r['gpu_h']:7.2f} {r['fac_kwh']:7.2f} {r['day_mwh']:8.3f} {r['wh_session']:8.3f} "
              f"{r['ttft_p99']:7.2f} s {ramp:>9s} {r['warm_h']:10.3f}")
    saved = 1 - rows[1]["fac_kwh"] / rows[0]["fac_kwh"]
    print(f"autoscaling saves {100 * (1 - rows[1]['gpu_h'] / rows[0]['gpu_h']):.0f} % of serving GPU-hours and "
          f"{100 * saved:.0f} % of facility energy (parked), {100 * (1 - rows[2]['fac_kwh'] / rows[0]['fac_kwh']):.0f} % "
          f"with stopped GPUs off; MWh/day = the compressed run's energy x {compress:g}")

    p = plt()
    fig, (a, b) = p.subplots(2, 1, figsize=(10, 6), sharex=True)
    hours = 24 * compress / DAY_S
    df = auto.scaling
    t = np.append(df["time_s"].to_numpy(), df["end_s"].iloc[-1]) * hours   # each state holds to the next change
    a.step(t, np.append(df["ready"], df["ready"].iloc[-1]), where="post", label="ready")
    a.step(t, np.append(df["warming"], df["warming"].iloc[-1]), where="post", label="warming up")
    a.axhline(peak, color="grey", ls="--", lw=1, label=f"static fleet ({peak})")
    edges = np.linspace(0.0, DAY_S / compress, 25)   # one bin per hour
    counts, _ = np.histogram(times, bins=edges)
    a2 = a.twinx()
    a2.plot(edges[:-1] * hours, counts / np.diff(edges), color="C3", alpha=0.5, lw=1)
    a2.set_ylabel("sessions/s (compressed)", color="C3")
    a.set_ylabel("replicas")
    a.legend(loc="upper left", fontsize=8)
    a.set_title("replicas follow the day's load")
    for res, name in ((static, "static"), (auto, "autoscaled (parked)"), (off, "autoscaled (off)")):
        b.plot(res.power["time_s"] * hours, res.power["facility_power_w"] / 1e3, lw=1, label=name)
    b.set_xlabel("hour of the (compressed) day")
    b.set_ylabel("facility power (kW)")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    save(fig, out / "autoscaling_day.png")


if __name__ == "__main__":
    sys.exit(main())
