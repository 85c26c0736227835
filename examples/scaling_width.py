"""Test-time scaling: parallel width vs tail latency and energy.

Covers: agent knobs (``make_agent`` fields, here LATS's ``n_children`` and ``sample_mode``),
closed-loop runs, per-session latency percentiles and energy per task.

Scenario: LATS (tree search) on HotpotQA, one task at a time on one A100, expanding 1, 2, 4, 8 or
16 children per step. The children of a step run as parallel LLM calls (``sample_mode =
"fan-out"``) and are batched together on the GPU. Wider search solves more tasks in fewer rounds
(the generator's accuracy proxy rises), so solvable tasks finish sooner; but each round does more
work, so energy per task grows, and tasks that never succeed run every round and make the tail.
Compare mean and p95 latency: the paper (Fig. 16) saw width cut mean latency; here watch how the
tail and the energy respond.
"""
from __future__ import annotations

import sys

import numpy as np
from _common import one_at_a_time, parse_args, plt, save, scenario

from agentwatt.sim.run import run
from agentwatt.traces.agents import make_agent


def accuracy_proxy(**knobs) -> float:
    """The generator's own success chance: solvable share × P(success within the iteration cap)."""
    s = make_agent("lats-hotpotqa", **knobs).strategy
    return s.solvable_fraction * (1 - (1 - s.success_prob()) ** s.max_iterations)


def main(argv: list[str] | None = None) -> None:
    out, fast = parse_args("scaling_width", __doc__, argv)
    widths = (1, 4, 16) if fast else (1, 2, 4, 8, 16)
    n = 2 if fast else 30
    rows = []
    for w in widths:
        knobs = {"n_children": w, "sample_mode": "fan-out", "max_iterations": 8 if fast else 32}
        r = run(scenario(f"LATS width {w}", one_at_a_time("lats-hotpotqa", n, knobs)))
        lat = r.sessions["finish_s"] - r.sessions["arrival_s"]
        wh = r.summary["gpu_energy_j"] / r.summary["sessions_completed"] / 3600
        rows.append((w, lat.mean(), np.percentile(lat, 95), wh, accuracy_proxy(**knobs)))
        print(f"width {w:>2}: mean {rows[-1][1]:6.1f} s  p95 {rows[-1][2]:6.1f} s  {wh:6.2f} Wh/task  "
              f"accuracy proxy {100 * rows[-1][4]:.0f} %")
    w, mean, p95, wh, acc = map(np.array, zip(*rows))
    p = plt()
    fig, (a, b) = p.subplots(1, 2, figsize=(12, 3.8), layout="constrained")   # the twin axis label needs room
    a.plot(w, mean, marker="o", label="mean")
    a.plot(w, p95, marker="s", label="p95")
    a.set_xscale("log", base=2)
    a.set_xlabel("children per expansion (parallel width)")
    a.set_ylabel("task latency alone (s)")
    a.legend(fontsize=8)
    a2 = a.twinx()
    a2.plot(w, 100 * acc, color="green", ls="--", marker="^", label="accuracy proxy")
    a2.set_ylabel("accuracy proxy (%)", color="green")
    a2.set_ylim(0, 100)
    a.set_title("latency and accuracy vs width")
    b.plot(w, wh, marker="o", color="C3")
    b.set_xscale("log", base=2)
    b.set_xlabel("children per expansion (parallel width)")
    b.set_ylabel("GPU Wh per task")
    b.set_title("energy per task vs width")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.set_xticks(w, [f"{v:g}" for v in w])   # the widths themselves, not powers of two
        ax.minorticks_off()
    save(fig, out / "width_latency_energy.png")


if __name__ == "__main__":
    sys.exit(main())
