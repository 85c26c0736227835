"""The one step predictor: how long an engine step takes, what it draws, and what a power cap does
to it. Pure functions on a profile's coefficients; the replica, the workload estimates, the
calibration fit and the paper report all call these (nothing else writes the formula out).

Work of one step of a continuous-batching engine (all devices of one replica)::

    P = prompt tokens computed in the step (all prefill chunks)
    A = sum over chunks of chunk * (cached_before + chunk)    (attention query x key pairs)
    D = sequences that decode one token in the step
    C = sum of the context lengths (KV tokens read) of those

Step time (``LatencyModel`` coefficients, seconds)::

    step_s = overhead_s + linear(T)
           + prefill_token_s * P + prefill_attn_s * A + decode_seq_s * D + decode_ctx_s * C
    linear(T) = (W^p + (token_s * T)^p)^(1/p),   T = P + D,
    W = weight_s + expert_weight_s * (1 - (1 - k/E)^T)     (mixture of experts: share of experts touched)

``linear`` is the weight-streaming matmuls as a smooth roofline: memory-bound (reading the weights
once, ``weight_s``) at small batches, compute-bound (``token_s`` per token) at large ones, the two
overlapping; ``overhead_s`` is a per-step floor (CPU, launches, all-reduce latency) that does not
scale with bandwidth. Profiles calibrated on a CPU leave ``weight_s = token_s = 0``: the linear term
vanishes and the remaining terms are the additive model fitted there. Coefficients of the bundled
GPU profiles come from published measurements (``calibrate/measured.py``).

A run of k decode steps with an unchanged batch (no arrivals, no prefill, nobody finishing) has
step j (from 0) take ``first + growth_s * j`` with ``growth_s = decode_ctx_s * D`` (every sequence's
context grows by one token a step): ``DecodeBlock`` sums it in closed form, which is what lets the
replica advance k steps in one event.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatt.core.profile import LatencyModel, Profile


def weight_read_s(lat: "LatencyModel", tokens: float) -> float:
    """Seconds reading the weights once: the dense ones, and of a mixture of experts the share of
    experts ``tokens`` routed tokens touch, 1 − (1 − k/E)^T with uniform routing."""
    w = lat.weight_s
    if lat.expert_weight_s and tokens > 0:
        w += lat.expert_weight_s * (1.0 - (1.0 - lat.experts_per_token / lat.experts) ** tokens)
    return w


def linear_s(lat: "LatencyModel", tokens: float) -> float:
    """Seconds of the weight-streaming matmuls for ``tokens`` tokens (0 without a roofline term)."""
    if tokens <= 0 or (lat.weight_s == 0.0 and lat.token_s == 0.0):
        return 0.0
    p = lat.overlap_p
    return (weight_read_s(lat, tokens) ** p + (lat.token_s * tokens) ** p) ** (1.0 / p)


def step_s(lat: "LatencyModel", prefill_tokens: float, prefill_attn: float, decode_seqs: float,
           decode_ctx: float) -> float:
    """Seconds for one engine step with the given work (see the module docstring)."""
    t = (lat.overhead_s + lat.prefill_token_s * prefill_tokens + lat.prefill_attn_s * prefill_attn
         + lat.decode_seq_s * decode_seqs + lat.decode_ctx_s * decode_ctx)
    if lat.weight_s or lat.token_s:
        t += linear_s(lat, prefill_tokens + decode_seqs)
    return t


def prefill_part_s(lat: "LatencyModel", prefill_tokens: float, prefill_attn: float,
                   decode_seqs: float = 0.0) -> float:
    """The prompt work's share of a step, in seconds (what a clock cut stretches): its own terms and
    its tokens' share of the matmuls."""
    t = lat.prefill_token_s * prefill_tokens + lat.prefill_attn_s * prefill_attn
    if prefill_tokens and (lat.weight_s or lat.token_s):
        t += linear_s(lat, prefill_tokens + decode_seqs) * prefill_tokens / (prefill_tokens + decode_seqs)
    return t


def prefill_share(lat: "LatencyModel", prefill_tokens: float, prefill_attn: float, decode_seqs: float,
                  decode_ctx: float) -> float:
    """Fraction of the step's variable time spent on prompt work (0 for a pure decode step)."""
    total = step_s(lat, prefill_tokens, prefill_attn, decode_seqs, decode_ctx) - lat.overhead_s
    if total <= 0.0:
        return 0.0
    return prefill_part_s(lat, prefill_tokens, prefill_attn, decode_seqs) / total


class DecodeBlock:
    """Timing of back-to-back decode steps whose context grows by ``growth`` tokens of work per step:
    step j (from 0) takes ``first + growth_s·j`` seconds, so k steps end at
    ``k·first + growth_s·k(k−1)/2`` (closed form: no per-step Python)."""

    __slots__ = ("first", "growth_s", "energy0", "energy_growth")

    def __init__(self, first_step_s: float, growth_s: float, energy0: float | None = None,
                 energy_growth: float = 0.0) -> None:
        self.first = first_step_s
        self.growth_s = growth_s
        self.energy0 = energy0            # joules of step 0 (None: power unavailable)
        self.energy_growth = energy_growth  # joules added per step (power rises with the context read)

    def end(self, k: int) -> float:
        return k * self.first + self.growth_s * k * (k - 1) / 2.0

    def energy(self, k: int) -> float | None:
        """Joules of the first k steps (closed form; None when power is unavailable)."""
        if self.energy0 is None:
            return None
        return k * self.energy0 + self.energy_growth * k * (k - 1) / 2.0

    def step_watts(self, j: int) -> float | None:
        """Watts during step j."""
        if self.energy0 is None:
            return None
        return (self.energy0 + self.energy_growth * j) / (self.first + self.growth_s * j)

    def steps_started_by(self, elapsed: float) -> int:
        """The number of steps that have started by ``elapsed`` (the last may be in progress): the
        smallest k with end(k) ≥ elapsed, at least 1."""
        a, g = self.first, self.growth_s
        if g <= 0.0:
            k = math.ceil(elapsed / a - 1e-12)
        else:  # g/2·k² + (a − g/2)·k − elapsed = 0
            b = a - g / 2.0
            k = math.ceil((-b + math.sqrt(b * b + 2.0 * g * elapsed)) / g - 1e-12)
        k = max(1, k)
        while k > 1 and self.end(k - 1) >= elapsed:
            k -= 1
        while self.end(k) < elapsed:
            k += 1
        return k


def decode_block(lat: "LatencyModel", decode_seqs: int, decode_ctx: float) -> DecodeBlock:
    """The closed form of a run of decode steps of ``decode_seqs`` sequences whose contexts sum to
    ``decode_ctx`` tokens at the first step."""
    return DecodeBlock(step_s(lat, 0, 0, decode_seqs, decode_ctx), lat.decode_ctx_s * decode_seqs)


def decode_block_cost(profile: "Profile", decode_seqs: int, decode_ctx: float, k: int) -> DecodeBlock | None:
    """The closed form of k decode steps with their energy: step j takes ``first + g·j`` seconds
    and, below TDP, draws ``tp·(idle·t_j + compute_w·t_c + memory_w·t_m,j)`` joules (activity model;
    the memory time grows by the same ``g``), or ``watts·t_j`` (phase model: constant watts), so the
    block's joules are a closed form too. None when a power cap binds or the draw would reach TDP
    within the block: then the replica steps one at a time."""
    lat = profile.latency
    blk = decode_block(lat, decode_seqs, decode_ctx)
    pm = profile.power
    if not pm.available:
        return blk
    tp = profile.hardware.tp
    if not pm.activity:
        w = pm.busy_w(0.0, decode_seqs)
        blk.energy0, blk.energy_growth = w * tp * blk.first, w * tp * blk.growth_s
        return blk
    t_c, t_m = activity(lat, 0, 0, decode_seqs, decode_ctx)
    for j in (0, k - 1):   # watts are monotone in j: check both ends against TDP
        t = blk.first + blk.growth_s * j
        raw = pm.idle_w + pm.compute_w * t_c / t + pm.memory_w * (t_m + blk.growth_s * j) / t
        if pm.max_w is not None and raw > pm.max_w:
            return None
    blk.energy0 = tp * (pm.idle_w * blk.first + pm.compute_w * t_c + pm.memory_w * t_m)
    blk.energy_growth = tp * (pm.idle_w + pm.memory_w) * blk.growth_s
    return blk


def single_call_s(lat: "LatencyModel", prompt_tokens: int, cached_tokens: int, output_tokens: int) -> float:
    """Seconds for one call served alone: one prefill step for the uncached tokens, then one decode
    step per output token (decode step k, 1-based, reads a context of prompt + k tokens)."""
    new = max(1, prompt_tokens - cached_tokens)  # a fully cached prompt still computes its last token (vLLM)
    cached = prompt_tokens - new
    prefill = step_s(lat, new, new * (cached + new), 0, 0)
    n = output_tokens
    decode = n * step_s(lat, 0, 0, 1, 0) + lat.decode_ctx_s * (n * prompt_tokens + n * (n + 1) / 2)
    return prefill + decode


# --------------------------------------------------------------------------------------- power

@dataclass(frozen=True, slots=True)
class StepCost:
    seconds: float
    watts: float | None      # whole replica (all tp devices); None when power is unavailable
    clock_fraction: float    # 1.0 when no cap binds


def activity(lat: "LatencyModel", prefill_tokens: float, prefill_attn: float, decode_seqs: float,
             decode_ctx: float) -> tuple[float, float]:
    """Seconds of (compute, HBM streaming) in a step, from the step model's own terms: matmul FLOPs and
    prefill attention compute; weight reads and the decode KV reads stream memory. The per-step
    floor and the per-token and per-sequence costs (CPU scheduling and sampling, small kernels) count
    as neither: counting them as memory activity fitted the measured power no better held out
    (energy per request 11.5 % vs 9.7 % mean error) and drove H100's compute watts to 0."""
    tokens = prefill_tokens + decode_seqs
    return (lat.token_s * tokens + lat.prefill_attn_s * prefill_attn,
            weight_read_s(lat, tokens) + lat.decode_ctx_s * decode_ctx)


# DVFS under a cap. SM clock scales the compute terms (time x 1/f, their power x f^3: CMOS dynamic
# power ~ V^2 f with V tracking f [I]). NVIDIA GPUs keep the memory clock until the SM clock is at
# its floor; below that the cap can only be met by slowing HBM too (Ma et al. 2026, arXiv
# 2605.11999: decode draws 137-300 W on a 700 W H200, so caps above that never bind in decode).
MIN_SM_CLOCK_FRACTION = 0.3   # A100 / H100 lowest supported graphics clock ~ 210-345 MHz of 1,410-1,980 [nvidia-smi -q -d SUPPORTED_CLOCKS]


def _capped_activity(pm, lat, parts: tuple[float, float, float, float, float, float],
                     cap: float) -> tuple[float, float, float]:
    """(step seconds, watts, clock fraction) of a step whose uncapped draw exceeds ``cap``. ``parts``:
    matmul compute, weight streaming (smooth max of the two in a roofline profile, else a sum),
    prefill-attention compute, KV streaming, other memory-bound kernels, and the floor."""
    tc_lin, tm_lin, t_attn, t_kv, t_kern, t_floor = parts
    roof = bool(lat.weight_s or lat.token_s)

    def at(f: float, g: float) -> tuple[float, float]:
        lin = _smax(lat, tm_lin / g, tc_lin / f) if roof else tc_lin / f + tm_lin / g
        t = t_floor + lin + t_attn / f + t_kv / g + t_kern / g
        u_c = min(1.0, (tc_lin + t_attn) / f / t)
        u_m = min(1.0, (tm_lin + t_kv + t_kern) / g / t)
        return t, pm.idle_w + pm.compute_w * u_c * f ** 3 + pm.memory_w * u_m * g
    lo, hi = MIN_SM_CLOCK_FRACTION, 1.0
    t, w = at(lo, 1.0)
    if w > cap:    # the SM clock at its floor is not enough: the memory clock comes down too
        glo, ghi = 0.05, 1.0
        for _ in range(40):
            g = 0.5 * (glo + ghi)
            if at(lo, g)[1] > cap:
                ghi = g
            else:
                glo = g
        t, w = at(lo, glo)
        return t, min(w, cap), lo * glo
    for _ in range(40):
        f = 0.5 * (lo + hi)
        if at(f, 1.0)[1] > cap:
            hi = f
        else:
            lo = f
    t, w = at(lo, 1.0)
    return t, min(w, cap), lo


def _smax(lat, a: float, b: float) -> float:
    p = lat.overlap_p
    return (a ** p + b ** p) ** (1.0 / p)


def step_cost(profile: "Profile", prefill_tokens: float, prefill_attn: float, decode_seqs: float,
              decode_ctx: float, cap_w_per_gpu: float | None = None) -> StepCost:
    """Time, replica watts and clock fraction of one step.

    Per-device watts come from the profile's power model; a replica draws them on each of its
    ``tp`` devices. When the profile has no power model (no meter where it was calibrated), watts
    are ``None`` and the run reports energy as unavailable instead of 0.

    Power cap (per GPU). When a step would draw more than the cap, the GPU lowers its clock to a
    fraction ``f`` of nominal. Dynamic power scales as f³ (CMOS power ∝ V²·f with voltage tracking
    frequency [I]), so ``f = ((cap − idle) / (P − idle))^(1/3)``. Only compute-bound (prefill) time
    stretches, by 1/f; memory-bound decode time does not — Splitwise measured "almost no latency
    impact when power capping [decode] by over 50 %" while prompt latency grew (docs/power.md §3.4).
    """
    lat = profile.latency
    t = step_s(lat, prefill_tokens, prefill_attn, decode_seqs, decode_ctx)
    pm = profile.power
    if not pm.available:
        return StepCost(t, None, 1.0)
    tp = profile.hardware.tp
    if pm.activity:
        t_c, t_m = activity(lat, prefill_tokens, prefill_attn, decode_seqs, decode_ctx)
        w = pm.activity_w(min(1.0, t_c / t), min(1.0, t_m / t))
        if cap_w_per_gpu is None or w <= cap_w_per_gpu:
            return StepCost(t, w * tp, 1.0)
        tokens = prefill_tokens + decode_seqs
        roof = bool(lat.weight_s or lat.token_s)
        kern = lat.prefill_token_s * prefill_tokens + lat.decode_seq_s * decode_seqs
        # (matmul compute, weight streaming, prefill attention, KV streaming, other memory work, the rest)
        parts = ((lat.token_s * tokens, t_m - lat.decode_ctx_s * decode_ctx, lat.prefill_attn_s * prefill_attn,
                  lat.decode_ctx_s * decode_ctx, 0.0, lat.overhead_s + kern) if roof else
                 (lat.prefill_token_s * prefill_tokens, lat.decode_seq_s * decode_seqs, lat.prefill_attn_s * prefill_attn,
                  lat.decode_ctx_s * decode_ctx, 0.0, lat.overhead_s))
        t2, w2, f = _capped_activity(pm, lat, parts, cap_w_per_gpu)
        return StepCost(max(t2, t), w2 * tp, f)
    w = pm.busy_w(prefill_share(lat, prefill_tokens, prefill_attn, decode_seqs, decode_ctx), decode_seqs)
    if cap_w_per_gpu is None or w <= cap_w_per_gpu:
        return StepCost(t, w * tp, 1.0)
    f = ((cap_w_per_gpu - pm.idle_w) / (w - pm.idle_w)) ** (1.0 / 3.0)
    t_pre = prefill_part_s(lat, prefill_tokens, prefill_attn, decode_seqs)
    return StepCost(t + t_pre * (1.0 / f - 1.0), cap_w_per_gpu * tp, f)


POWER_STATES = ("off", "parked", "idle", "busy")


def state_power_w(profile: "Profile", state: str) -> float | None:
    """Watts per GPU in a power state with no step running: ``off`` 0; ``parked`` no CUDA context,
    clocks down (``parked_w``; a profile without that level cannot say, and this raises); ``idle``
    the model loaded (``idle_w``). None when the profile has no power model."""
    pm = profile.power
    if not pm.available:
        return None
    if state == "off":
        return 0.0
    if state == "idle":
        return pm.idle_w
    if state == "parked":
        if pm.parked_w is None:
            from agentwatt.core.errors import InputError
            raise InputError(f"profile {profile.name}: no parked power level (power.parked_w): expected a profile "
                             f"with one, or spare_state = \"idle\" or \"off\"")
        return pm.parked_w
    raise ValueError(f"power state {state!r}: expected one of {', '.join(POWER_STATES)}")


def idle_power_w(profile: "Profile") -> float | None:
    """Replica watts with no step running (None when the profile has no power model)."""
    pm = profile.power
    if not pm.available:
        return None
    return profile.hardware.tp * pm.idle_w
