"""Watts of one replica from a profile (pure; no SimPy).

Per-device power comes from the profile's power model; a replica draws it on each of its ``tp``
devices. When the profile has no power model (no meter where it was calibrated), these return
``None`` and the run reports energy as unavailable instead of 0.
"""
from __future__ import annotations

from agentwatt.calibrate.profile import Profile
from agentwatt.sim.batching import StepPlan
from agentwatt.sim.latency import prefill_share


def step_power_w(profile: Profile, plan: StepPlan) -> float | None:
    pm = profile.power
    if not pm.available:
        return None
    share = prefill_share(profile.latency, plan)
    return profile.hardware.tp * pm.busy_w(share, plan.decode_seqs)


def idle_power_w(profile: Profile) -> float | None:
    pm = profile.power
    if not pm.available:
        return None
    return profile.hardware.tp * pm.idle_w
