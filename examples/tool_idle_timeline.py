"""Tool latency leaves GPUs idle: a timeline of one replica.

Covers: ``agentwatt.sim.timeline.record_timeline`` (per-step batch composition, KV use and power
of one replica) and continuous batching.

Scenario: one A100 serving ReAct agents at a light load, on HotpotQA (each tool call is a ~1.2 s
Wikipedia request) and on WebShop (~20 ms local web pages). In the HotpotQA timeline, look for the
orange bands: every session on the replica is waiting for Wikipedia and the GPU idles at 63 W.
Requests join and leave the running batch at every step (continuous batching), so the batch size
changes all the time; KV use rises as contexts grow and drops as calls finish. WebShop keeps the
GPU busy: its tools return before the next step.
"""
from __future__ import annotations

import sys

from _common import parse_args, scenario

from agentwatt.sim.timeline import plot_timeline, record_timeline


def main(argv: list[str] | None = None) -> None:
    out, fast = parse_args("tool_idle_timeline", __doc__, argv)
    window = 20.0 if fast else 60.0
    for agent, rate in (("react-hotpotqa", 0.3), ("react-webshop", 0.3)):
        sc = scenario(agent, [{"agent": agent, "rate_per_s": rate}], duration_s=window, drain_s=0.0)
        tl = record_timeline(sc, replica_index=0, until_s=window, sample_s=0.05)
        p = tl.power
        idle = p["idle_tool_share"].mean()     # equal-width bins
        busy = tl.samples[tl.samples["decode"] + tl.samples["prefill"] > 0]
        print(f"{agent}: GPU idle waiting on tools {100 * idle:.0f} % of {window:g} s; mean batch when busy "
              f"{(busy['decode'] + busy['prefill']).mean():.1f} requests; mean power {p['gpu_power_w'].mean():.0f} W")
        path = plot_timeline(tl, out / f"timeline_{agent}.png",
                             title=f"{agent} at {rate:g} sessions/s on one A100: the first {window:g} s")
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
