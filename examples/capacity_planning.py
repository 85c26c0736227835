"""Capacity planning: how many GPUs an agent mix needs to meet a p99 latency target.

Covers: ``agentwatt.plan.plan`` (``plan``, ``parse_slo``: the smallest fleet meeting an SLO with a
confidence bound over seeds, found by probing and bisection), a ``mix`` workload (several agents on
one arrival stream, ``examples/agent_mix.toml``) and the ``plan.png`` / ``plan.json`` outputs.

Scenario: 6 sessions/s of mixed traffic — 60 % chatbot, 30 % ReAct, 10 % Reflexion — on A100s
serving Llama-3.1-8B. The target: 99 % of agent tasks and chats finish within 60 s. The planner
tries 1, 2, 4, ... replicas with two seeds each, then bisects. Look at how p99 falls with the fleet
size (the agents' long tails set it, not the chats), and at the power the answer draws. The same
search runs from the shell: ``agentwatt plan examples/agent_mix.toml --slo 'session_e2e_s.p99<=60'``.
"""
from __future__ import annotations

import sys

from _common import EXAMPLES, parse_args

from agentwatt.plan.plan import parse_slo, plan


def main(argv: list[str] | None = None) -> None:
    out, fast = parse_args("capacity_planning", __doc__, argv)
    fixed = {"run.duration_s": 20.0, "workload.0.rate_per_s": 2.0} if fast else {}
    result = plan(EXAMPLES / "agent_mix.toml", [parse_slo("session_e2e_s.p99<=60")], out,
                  param="fleet.replicas", lo=1, hi=4 if fast else 16, seeds=2, confidence=0.9, fixed=fixed)
    for size, a in sorted(result.evaluated.items()):
        c = a.checks[0]
        print(f"{size:>3} replicas: p99 {c.mean:7.1f} s (bound {c.bound:7.1f} s) "
              f"{'meets' if a.meets_slo else 'misses'} the SLO; peak power {a.budget_peak_power_w / 1e3:.1f} kW")
    print(f"answer: {result.answer} replicas" if result.answer else f"no answer: {result.reason}")
    print(f"wrote {out / 'plan.png'} and {out / 'plan.json'}")


if __name__ == "__main__":
    sys.exit(main())
