"""Power capping: peak power vs tail latency.

Covers: ``[facility] gpu_cap_w`` (a cap lowers the clock: compute-bound prefill slows, memory-bound
decode barely does), ``gpu_peak_power_w`` / ``facility_power`` (peak and P95 of the power series),
``provisioning.cap_binding_share_of_busy_time`` and session tail latency.

Scenario: two A100s serving a chat + ReAct mix at a steady load. We cap every GPU at 400 (no cap),
350, 300, 250, 200 and 150 W. Look at the trade-off: the site's peak power (what a datacenter must
provision for) falls with the cap, while p99 latency rises slowly at first and faster once the cap
bites deep; energy per session falls, because in the simulator's cap model (README, "Datacenter
power") a capped GPU draws less while memory-bound decoding barely slows.
"""
from __future__ import annotations

import sys

from _common import parse_args, plt, save, scenario

from agentwatt.sim.run import run

CAPS_W = (None, 350.0, 300.0, 250.0, 200.0, 150.0)


def main(argv: list[str] | None = None) -> None:
    out, fast = parse_args("power_capping", __doc__, argv)
    caps = (None, 250.0, 150.0) if fast else CAPS_W
    wl = [{"mix": {"chatbot-sharegpt": 0.7, "react-hotpotqa": 0.3}, "rate_per_s": 6.0}]
    rows = []
    for cap in caps:
        fac = {} if cap is None else {"gpu_cap_w": cap}
        s = run(scenario(f"cap {cap}", wl, replicas=2, duration_s=40.0 if fast else 240.0, drain_s=600.0,
                         facility=fac)).summary
        rows.append({"cap": cap or 400.0, "p99": s["session_e2e_s"]["p99"], "gpu_peak_kw": s["gpu_peak_power_w"] / 1e3,
                     "fac_p95_kw": s["facility_power"]["p95_w"] / 1e3,
                     "wh": s["gpu_energy_per_session_with_idle_j"] / 3600,
                     "binding": s["provisioning"]["cap_binding_share_of_busy_time"] or 0.0})
        r = rows[-1]
        print(f"cap {r['cap']:5.0f} W/GPU: p99 {r['p99']:6.1f} s  GPU peak {r['gpu_peak_kw']:.2f} kW  facility P95 "
              f"{r['fac_p95_kw']:.2f} kW  {r['wh']:.3f} Wh/session  cap binds {100 * r['binding']:.0f} % of busy time")
    p = plt()
    fig, (a, b) = p.subplots(1, 2, figsize=(11, 3.8))
    a.plot([r["gpu_peak_kw"] for r in rows], [r["p99"] for r in rows], marker="o")
    for r in rows:
        a.annotate(f"{r['cap']:.0f} W", (r["gpu_peak_kw"], r["p99"]), fontsize=8, xytext=(4, 4),
                   textcoords="offset points")
    a.margins(x=0.15, y=0.12)   # room for the cap labels inside the axes
    a.set_xlabel("peak GPU power of the two replicas (kW)")
    a.set_ylabel("session p99 latency (s)")
    a.set_title("trade-off: provisioned power vs tail latency")
    b.plot([r["cap"] for r in rows], [r["wh"] for r in rows], marker="o", color="C3")
    b.set_xlabel("GPU power cap (W, 400 = none)")
    b.set_ylabel("GPU Wh per session")
    b.set_title("energy per session")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    save(fig, out / "power_cap_tradeoff.png")


if __name__ == "__main__":
    sys.exit(main())
