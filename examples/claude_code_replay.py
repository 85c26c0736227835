"""Replaying real Claude Code sessions.

Covers: trace workloads (``trace = "claude-code-sample"``, ``format = "claude-code"``), retiming a
trace with an arrival process (``arrival = "poisson"``, ``rate_per_s``, ``repeat = true``), the
prefix cache hit rate of recorded prompts, and the calls and power tables.

Scenario: four recorded Claude Code sessions (WEKA's public kv-cache traces; 3 to 32 model calls
each, prompts of 15k–70k tokens that repeat the previous prompt almost entirely, minutes of tool
and human time between calls) are replayed in a loop, starting as a Poisson process, on one
Llama-3.1-70B replica on eight A100s — a stand-in: the trace came from a far larger model. The
recorded token counts and prefix sharing drive the simulation; the service times are the
simulator's. Look at the cache hit rate: at a low rate almost every prompt token is a hit; as the
rate doubles, the KV cache no longer holds every open session's context between its calls, the hit
rate collapses, each call re-reads a 50k-token prompt, and time to first token explodes (some
sessions are still unfinished when the run ends). The power series at the lowest rate shows the
idle stretches while the "developer" and the tools work.
"""
from __future__ import annotations

import sys

import numpy as np
from _common import parse_args, plt, save, scenario

from agentwatt.sim.plots import ccdf
from agentwatt.sim.report import call_metrics
from agentwatt.sim.run import run

PROFILE = "llama-3.1-70b_8xa100-40gb"


def main(argv: list[str] | None = None) -> None:
    out, fast = parse_args("claude_code_replay", __doc__, argv)
    rates = (0.01,) if fast else (0.005, 0.01, 0.02)
    duration = 300.0 if fast else 1200.0
    results = {}
    for rate in rates:
        wl = [{"trace": "claude-code-sample", "format": "claude-code", "arrival": "poisson", "rate_per_s": rate,
               "repeat": True}]
        r = run(scenario(f"claude code at {rate:g}/s", wl, profile=PROFILE, duration_s=duration, drain_s=3000.0))
        results[rate] = r
        s = r.summary
        print(f"{rate:g} sessions/s: {s['sessions_completed']} of {s['sessions_arrived']} sessions finished, "
              f"{s['calls_completed']} calls, prompt "
              f"{s['prompt_tokens'] / max(1, s['calls_completed']):,.0f} tokens/call, cache hit "
              f"{100 * (s['prefix_cache_hit_rate'] or 0):.0f} %, TTFT p50 {s['ttft_s']['p50']:.2f} s p99 "
              f"{s['ttft_s']['p99']:.1f} s, GPU busy {100 * s['gpu_utilization']:.0f} %, "
              f"{s['gpu_energy_per_session_j'] / 3600:.0f} Wh/session")
    p = plt()
    fig, (a, b) = p.subplots(1, 2, figsize=(12, 3.8))
    for rate, r in results.items():
        ccdf(a, call_metrics(r.calls)["ttft_s"], f"{rate:g} sessions/s")
    a.set_xlabel("time to first token per call (s)")
    a.set_title("Claude Code calls on one 70B replica")
    a.legend(fontsize=8)
    low = results[rates[0]]
    b.plot(low.power["time_s"], low.power["gpu_power_w"] / 1e3, lw=0.8)
    b.set_xlabel("simulated time (s)")
    b.set_ylabel("GPU power, 8 GPUs (kW)")
    b.set_title(f"power at {rates[0]:g} sessions/s: idle while tools and people work")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    save(fig, out / "claude_code_replay.png")


if __name__ == "__main__":
    sys.exit(main())
