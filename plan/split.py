"""The smallest prefill:decode split that meets the SLOs (a ``[disaggregation]`` scenario).

For each prefill pool size p in ``[prefill_lo, prefill_hi]``, ``plan`` searches the smallest
decode pool (``--param disaggregation.decode_replicas`` with ``--set
disaggregation.prefill_replicas=p``) meeting ``slos``; the answer is the split with the fewest
replicas in all, ties broken by the lower peak power. Each p's plan is written under
``out_dir/prefill_<p>/`` (its own result store, so reruns are free). The CLI equivalent of one
row is ``agentwatt plan SCENARIO --param disaggregation.decode_replicas --set
disaggregation.prefill_replicas=P --slo ...``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from agentwatt.core.errors import InputError
from agentwatt.plan.plan import SLO, PlanResult, plan

DECODE = "disaggregation.decode_replicas"
PREFILL = "disaggregation.prefill_replicas"


@dataclass
class SplitResult:
    plans: dict[int, PlanResult]           # prefill replicas → the decode plan for that prefill pool
    answer: tuple[int, int] | None         # (prefill, decode) replicas; None: no split in range qualifies

    def table(self) -> pd.DataFrame:
        """One row per prefill size: the smallest decode pool meeting the SLOs and its power."""
        rows = []
        for p, res in sorted(self.plans.items()):
            a = res.at_answer
            rows.append({"prefill_replicas": p, "decode_replicas": res.answer,
                         "replicas": None if res.answer is None else p + res.answer,
                         "budget_peak_power_w": None if a is None else a.budget_peak_power_w,
                         "reason": res.reason})
        return pd.DataFrame(rows)


def plan_split(scenario: str | Path, slos: list[SLO], out_dir: str | Path, runner=None, *, prefill_lo: int = 1,
               prefill_hi: int = 4, decode_lo: int = 1, decode_hi: int = 16, seeds: int = 3,
               confidence: float = 0.9, fixed: dict[str, Any] | None = None) -> SplitResult:
    """Search the smallest prefill:decode split of ``scenario`` meeting ``slos`` (module docstring)."""
    if not 1 <= prefill_lo <= prefill_hi:
        raise InputError(f"prefill range {prefill_lo}..{prefill_hi}: expected 1 <= prefill_lo <= prefill_hi")
    fixed = dict(fixed or {})
    if PREFILL in fixed or DECODE in fixed:
        raise InputError(f"fixed: {PREFILL} and {DECODE} are searched: expected other keys")
    plans = {}
    for p in range(prefill_lo, prefill_hi + 1):
        plans[p] = plan(scenario, slos, Path(out_dir) / f"prefill_{p}", runner, param=DECODE, lo=decode_lo,
                        hi=decode_hi, seeds=seeds, confidence=confidence, fixed={**fixed, PREFILL: p}, plot=False)
    ok = [(p + r.answer, r.at_answer.budget_peak_power_w or 0.0, p, r.answer) for p, r in plans.items() if r.answer is not None]
    answer = min(ok)[2:] if ok else None
    return SplitResult(plans=plans, answer=answer)
