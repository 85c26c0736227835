"""Step time of one replica from a profile (pure; no SimPy).

``step_s(plan)`` applies the profile's fitted step-time model (see ``core/profile.py``) to a
``StepPlan``. ``slowdown`` > 1 stretches every step (a lower clock under a power cap).
"""
from __future__ import annotations

from agentwatt.core.profile import LatencyModel
from agentwatt.sim.batching import StepPlan


def step_s(model: LatencyModel, plan: StepPlan, slowdown: float = 1.0) -> float:
    return slowdown * model.step_s(plan.prefill_tokens, plan.prefill_attn, plan.decode_seqs, plan.decode_ctx)


def prefill_share(model: LatencyModel, plan: StepPlan) -> float:
    """Fraction of the step's variable time spent on prompt work (0 for a pure decode step)."""
    total = model.step_s(plan.prefill_tokens, plan.prefill_attn, plan.decode_seqs, plan.decode_ctx) - model.overhead_s
    if total <= 0.0:
        return 0.0
    return model.prefill_part_s(plan.prefill_tokens, plan.prefill_attn) / total
