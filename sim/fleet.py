"""Wiring: scenario + profile → a simulated world, ready to run. The only place that builds it.

``build(scenario, profile)`` makes the SimPy environment, the replicas behind their router, the
recorder and session context, and starts the arrival processes: one per ``[[workload]]`` class,
each seeded from the scenario's seed (or, given ``sessions``, one process replaying them).
``sim/run.py`` runs the result to the end; ``sim/timeline.py`` runs it for a window and samples.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import simpy

from agentwatt.core.profile import Profile
from agentwatt.core.errors import InputError
from agentwatt.sim import kvtier, workload
from agentwatt.sim.metrics import Recorder
from agentwatt.sim.replica import Replica
from agentwatt.sim.router import Router
from agentwatt.sim.scenario import EngineConfig, Scenario
from agentwatt.sim.session import SessionContext
from agentwatt.traces.schema import Session


def activation_reserve_bytes(profile: Profile, engine: EngineConfig) -> float:
    """Memory a vLLM-like engine keeps for one step's activations, per device [I, estimate].

    vLLM sizes the KV pool after a profiling forward pass of ``max_num_batched_tokens`` tokens.
    Its peak is dominated by the fp32 logits (tokens × vocab × 4 B) and the MLP intermediate
    (tokens × 2 × intermediate × dtype bytes, gate and up), sharded by TP except the logits
    gather. This estimate stands in for that measured peak.
    """
    m = profile.model
    tokens = engine.max_num_batched_tokens
    return tokens * (m.vocab_size * 4 + 2 * m.intermediate_size * m.dtype_bytes / profile.hardware.tp)


def kv_capacity_tokens(profile: Profile, engine: EngineConfig) -> int:
    """Tokens of KV cache one replica holds: (memory × utilisation − weights − activations) / KV bytes.

    Per device: ``mem × gpu_memory_utilization − weights/tp − activation reserve``, divided by the
    KV bytes per token per device (KV heads are split across the ``tp`` devices).
    """
    if engine.kv_capacity_tokens is not None:
        return engine.kv_capacity_tokens
    hw, m = profile.hardware, profile.model
    mem = hw.mem_gib_per_device * 2**30 * engine.gpu_memory_utilization
    free = mem - m.weight_bytes / hw.tp - activation_reserve_bytes(profile, engine)
    per_token = m.kv_bytes_per_token / hw.tp
    tokens = int(free // per_token)
    if tokens < engine.block_size_tokens:
        raise InputError(
            f"profile {profile.name}: no room for a KV cache: {hw.mem_gib_per_device:g} GiB × "
            f"{engine.gpu_memory_utilization:g} per device holds {m.weight_bytes / hw.tp / 2**30:.1f} GiB of weights "
            f"and activations: expected more device memory, a larger tp, or [engine] kv_capacity_tokens")
    return tokens


@dataclass
class World:
    """Everything one run needs, built and wired; the arrival processes are started."""

    env: simpy.Environment
    replicas: list[Replica]
    router: Router
    num_blocks: int                 # KV blocks per replica
    recorder: Recorder
    ctx: SessionContext
    arrivals: list[simpy.Process]   # one per workload class (one replay process for given sessions)
    open_loop: bool                 # a generated open-loop class: run at least until arrivals end
    # [autoscale]: one sim/autoscale.Autoscaler per pool ("fleet"; with [disaggregation] "prefill", "decode")
    autoscalers: dict = field(default_factory=dict)
    disagg: object | None = None       # sim/disagg.Disaggregation with [disaggregation]


def build(scenario: Scenario, profile: Profile, *, sessions: Iterable[Session] | None = None) -> World:
    """The world of ``scenario`` with ``profile``, its arrival processes started.

    Workload class i draws from child i of ``SeedSequence(scenario.run.seed)``. With ``sessions``
    the ``[[workload]]`` classes are not used: the sessions are replayed at their ``arrival_s``
    (in the order given, non-decreasing; those after ``run.duration_s`` are not started).
    """
    env = simpy.Environment()
    disagg = None
    if scenario.disaggregation is None:
        replicas, router, num_blocks = _replicas(env, scenario, profile)
    else:
        replicas, router, num_blocks, disagg = _disaggregated(env, scenario, profile)
    rec = Recorder()
    eng = scenario.engine
    tiers = None
    if eng.kv_retention in kvtier.TIERED:
        from agentwatt.sim.facility import server_for
        spec = server_for(scenario.facility, profile)
        tiers = kvtier.build_tiers(eng, profile, spec.name, spec.gpus, len(replicas), scenario.source)
        for rep, tier in zip(replicas, tiers):
            rep.state.on_pin_dropped = kvtier.spiller(env, tier, rep.state.kv, eng.kv_retention)
            rep.state.host_match = tier.host.match
    ctx = SessionContext(env, router, rec, eng.block_size_tokens, eng.prefix_caching,
                         energy_available=profile.power.available, kv_retention=eng.kv_retention,
                         kv_retention_ttl_s=eng.kv_retention_ttl_s, kv_tiers=tiers,
                         prefix_routing=router.prefix is not None)
    if disagg is None and router.prefix is None and tiers is None:
        # every replica alike, routing blind to content, no host tier reading hashes before admission:
        # a prompt above this is dropped wherever it goes, its hashes never read
        ctx.kv_capacity_tokens = num_blocks * eng.block_size_tokens
    if disagg is not None:
        ctx.disagg = disagg
        disagg.ctx = ctx
    end_s = scenario.run.duration_s
    procs = []
    if sessions is not None:
        procs.append(env.process(workload.replay(ctx, sessions, end_s)))
        open_loop = False
    else:
        seeds = np.random.SeedSequence(scenario.run.seed).spawn(len(scenario.workload))
        for wc, seed in zip(scenario.workload, seeds):
            if wc.trace is not None:
                gen = workload.open_loop_trace(ctx, wc, end_s, seed)
            elif wc.arrival == "closed":
                gen = workload.closed_loop(ctx, wc, seed, end_s)
            else:
                gen = workload.open_loop_generated(ctx, wc, seed, end_s)
            procs.append(env.process(gen))
        # a generated open-loop class defines a time window: run at least to its end; trace replays
        # and closed-loop users end when their sessions do
        open_loop = any(wc.arrival != "closed" and (wc.trace is None or wc.retime) for wc in scenario.workload)
    return World(env=env, replicas=replicas, router=router, num_blocks=num_blocks, recorder=rec, ctx=ctx,
                 arrivals=procs, open_loop=open_loop, autoscalers=_autoscalers(env, scenario, profile, replicas, router,
                                                                               disagg),
                 disagg=disagg)


def _autoscalers(env: simpy.Environment, scenario: Scenario, profile: Profile, replicas: list, router,
                 disagg) -> dict:
    """The ``[autoscale]`` controllers by pool: the fleet's, or each pool's with ``[disaggregation]``."""
    if scenario.autoscale is None:
        return {}
    if disagg is None:
        return {"fleet": _autoscaler(env, scenario, profile, replicas, router)}
    return {"prefill": _autoscaler(env, scenario, disagg.prefill_profile, disagg.prefill, disagg.prefill_router),
            "decode": _autoscaler(env, scenario, disagg.decode_profile, disagg.decode, disagg.decode_router)}


def _autoscaler(env: simpy.Environment, scenario: Scenario, profile: Profile, replicas: list, router):
    """The ``[autoscale]`` controller over ``replicas`` of ``profile`` behind ``router``."""
    cfg = scenario.autoscale
    from agentwatt.core.step import state_power_w
    from agentwatt.sim.autoscale import Autoscaler, warmup_seconds
    warm = cfg.warmup_s if cfg.warmup_s is not None else warmup_seconds(profile.model.weight_bytes,
                                                                        cfg.storage_gb_per_s, cfg.engine_start_s)
    try:
        w = state_power_w(profile, cfg.stopped_state)
    except InputError as e:
        raise InputError(f"{scenario.source}: [autoscale] stopped_state = {cfg.stopped_state!r}: {e}") from None
    stopped_w = 0.0 if w is None else w * profile.hardware.tp
    return Autoscaler(env, replicas, router, cfg, warmup_s=warm, stopped_w=stopped_w, seed=scenario.run.seed)


def _replicas(env: simpy.Environment, scenario: Scenario, profile: Profile) -> tuple[list[Replica], Router, int]:
    """The replicas of ``scenario`` (each ``profile.hardware.tp`` GPUs), their router, KV blocks per replica."""
    replicas, blocks = _pool(env, scenario, profile, scenario.engine, 0, scenario.fleet.replicas)
    router = Router(replicas, scenario.router.policy, scenario.router.session_affinity,
                    scenario.router.prefix_max_imbalance)
    return replicas, router, blocks


def _pool(env: simpy.Environment, scenario: Scenario, profile: Profile, eng: EngineConfig, first: int,
          count: int) -> tuple[list[Replica], int]:
    """``count`` replicas of ``profile`` numbered from ``first``, and their KV blocks each."""
    from agentwatt.sim.facility import server_for
    spec = server_for(scenario.facility, profile)
    tp = profile.hardware.tp
    if tp > spec.gpus or spec.gpus % tp:
        raise InputError(f"{scenario.source}: profile {profile.name} needs tp = {tp} GPUs per replica: expected a "
                         f"divisor of the {spec.gpus} GPUs of a [facility] server = {spec.name!r}")
    blocks = kv_capacity_tokens(profile, eng) // eng.block_size_tokens
    from agentwatt.sim.budget import check_fits
    check_fits(scenario, blocks, spec.gpus, tp)   # a clean error now, not a MemoryError mid-run
    replicas = [Replica(env, i, profile, num_blocks=blocks, block_size=eng.block_size_tokens,
                        max_num_seqs=eng.max_num_seqs, max_num_batched_tokens=eng.max_num_batched_tokens,
                        prefix_caching=eng.prefix_caching, resolution_s=scenario.run.power_resolution_s,
                        cap_w_per_gpu=gpu_cap_w(scenario, profile), step_skipping=eng.step_skipping,
                        step_trace=scenario.run.step_trace)
                for i in range(first, first + count)]
    return replicas, blocks


def _disaggregated(env: simpy.Environment, scenario: Scenario, profile: Profile):
    """The prefill and decode pools of ``[disaggregation]``, their routers and the ``Disaggregation``."""
    from dataclasses import replace
    from agentwatt.core.profile import load_profile
    from agentwatt.sim.disagg import Disaggregation
    cfg, eng = scenario.disaggregation, scenario.engine
    profiles = []
    for name in (cfg.prefill_profile, cfg.decode_profile):
        p = profile if name is None else load_profile(name)
        if p.hardware.tp != profile.hardware.tp or p.power.available != profile.power.available:
            raise InputError(f"{scenario.source}: [disaggregation] profile {p.name}: tp = {p.hardware.tp}: expected "
                             f"the same tp ({profile.hardware.tp}) and power model as the scenario's profile")
        profiles.append(p)
    pe = replace(eng, **{k: v for k, v in (("max_num_seqs", cfg.prefill_max_num_seqs),
                                           ("max_num_batched_tokens", cfg.prefill_max_num_batched_tokens))
                         if v is not None})
    de = replace(eng, **{k: v for k, v in (("max_num_seqs", cfg.decode_max_num_seqs),
                                           ("max_num_batched_tokens", cfg.decode_max_num_batched_tokens))
                         if v is not None})
    pre, blocks = _pool(env, scenario, profiles[0], pe, 0, cfg.prefill_replicas)
    dec, _ = _pool(env, scenario, profiles[1], de, cfg.prefill_replicas, cfg.decode_replicas)
    pr = Router(pre, scenario.router.policy, scenario.router.session_affinity, scenario.router.prefix_max_imbalance)
    dr = Router(dec, scenario.router.policy, scenario.router.session_affinity, scenario.router.prefix_max_imbalance)
    return pre + dec, pr, blocks, Disaggregation(env, cfg, pre, dec, pr, dr, profiles[0], profiles[1])


def gpu_cap_w(scenario: Scenario, profile: Profile) -> float | None:
    """The binding per-GPU cap from the GPU-, server- and rack-level caps of the scenario.

    A server cap C is split statically over its g GPUs under the host model of sim/facility.py
    (host = idle + α·Σ(P_gpu − P_idle)): g·c + host(c) ≤ C gives
    c = (C − host_idle + α·g·P_idle) / (g·(1 + α)); a rack cap is split evenly over its servers
    first [I].
    """
    from agentwatt.sim.facility import server_for
    fac = scenario.facility
    caps = []
    if fac.gpu_cap_w is not None:
        caps.append(fac.gpu_cap_w)
    if fac.server_cap_w is not None or fac.rack_cap_w is not None:
        spec = server_for(fac, profile)
        a, g = fac.host_dynamic_fraction, spec.gpus
        idle = profile.power.idle_w if profile.power.available else 0.0

        def per_gpu(server_cap: float) -> float:
            return (server_cap - spec.host_idle_w + a * g * idle) / (g * (1.0 + a))
        if fac.server_cap_w is not None:
            caps.append(per_gpu(fac.server_cap_w))
        if fac.rack_cap_w is not None:
            caps.append(per_gpu((fac.rack_cap_w - fac.network_w_per_rack) / fac.servers_per_rack))
    if not caps:
        return None
    cap = min(caps)
    pm = profile.power
    if pm.available and cap <= pm.idle_w:
        raise InputError(f"{scenario.source}: [facility] power cap leaves {cap:.0f} W per GPU, at or below the "
                         f"profile's idle power {pm.idle_w:.0f} W: expected a higher cap")
    return cap
