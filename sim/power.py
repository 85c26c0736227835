"""Watts of one replica from a profile, and what a power cap does to a step (pure; no SimPy).

Per-device power comes from the profile's power model; a replica draws it on each of its ``tp``
devices. When the profile has no power model (no meter where it was calibrated), watts are
``None`` and the run reports energy as unavailable instead of 0.

Power cap (per GPU). When a step would draw more than the cap, the GPU lowers its clock to a
fraction ``f`` of nominal. Dynamic power scales as f³ (CMOS power ∝ V²·f with voltage tracking
frequency [I]), so ``f = ((cap − idle) / (P − idle))^(1/3)``. Only compute-bound (prefill) time
stretches, by 1/f; memory-bound decode time does not — Splitwise measured "almost no latency
impact when power capping [decode] by over 50 %" while prompt latency grew (power.md §3.4 [P]).
Check: capping a 400 W A100 prefill at 320 W (−20 %) gives f = 0.91, +9.5 % prefill time, close
to POLCA's "up to 20 % less peak power for ≤ 7 % performance loss" (power.md §3.4 [S]).
"""
from __future__ import annotations

from dataclasses import dataclass

from agentwatt.core.profile import Profile
from agentwatt.sim.batching import StepPlan
from agentwatt.sim.latency import prefill_share


@dataclass(frozen=True, slots=True)
class StepCost:
    seconds: float
    watts: float | None      # whole replica (all tp devices); None when power is unavailable
    clock_fraction: float    # 1.0 when no cap binds


def step_cost(profile: Profile, plan: StepPlan, cap_w_per_gpu: float | None = None) -> StepCost:
    lat = profile.latency
    t = lat.step_s(plan.prefill_tokens, plan.prefill_attn, plan.decode_seqs, plan.decode_ctx)
    pm = profile.power
    if not pm.available:
        return StepCost(t, None, 1.0)
    w = pm.busy_w(prefill_share(lat, plan), plan.decode_seqs)
    tp = profile.hardware.tp
    if cap_w_per_gpu is None or w <= cap_w_per_gpu:
        return StepCost(t, w * tp, 1.0)
    f = ((cap_w_per_gpu - pm.idle_w) / (w - pm.idle_w)) ** (1.0 / 3.0)
    t_pre = lat.prefill_part_s(plan.prefill_tokens, plan.prefill_attn)
    return StepCost(t + t_pre * (1.0 / f - 1.0), cap_w_per_gpu * tp, f)


def step_power_w(profile: Profile, plan: StepPlan) -> float | None:
    return step_cost(profile, plan).watts


def idle_power_w(profile: Profile) -> float | None:
    pm = profile.power
    if not pm.available:
        return None
    return profile.hardware.tp * pm.idle_w
