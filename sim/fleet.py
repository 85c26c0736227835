"""Wiring: scenario + profile → replicas behind a router. The only place that builds the world."""
from __future__ import annotations

import simpy

from agentwatt.core.profile import Profile
from agentwatt.core.errors import InputError
from agentwatt.sim.replica import Replica
from agentwatt.sim.router import Router
from agentwatt.sim.scenario import EngineConfig, Scenario


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


def build_fleet(env: simpy.Environment, scenario: Scenario, profile: Profile):
    eng = scenario.engine
    from agentwatt.sim.facility import server_spec
    spec = server_spec(scenario.facility.server)
    tp = profile.hardware.tp
    if tp > spec.gpus or spec.gpus % tp:
        raise InputError(f"{scenario.source}: profile {profile.name} needs tp = {tp} GPUs per replica: expected a "
                         f"divisor of the {spec.gpus} GPUs of a [facility] server = {spec.name!r}")
    blocks = kv_capacity_tokens(profile, eng) // eng.block_size_tokens
    replicas = [Replica(env, i, profile, num_blocks=blocks, block_size=eng.block_size_tokens,
                        max_num_seqs=eng.max_num_seqs, max_num_batched_tokens=eng.max_num_batched_tokens,
                        prefix_caching=eng.prefix_caching, resolution_s=scenario.run.power_resolution_s,
                        cap_w_per_gpu=gpu_cap_w(scenario, profile), step_skipping=eng.step_skipping)
                for i in range(scenario.fleet.replicas)]
    router = Router(replicas, scenario.router.policy, scenario.router.session_affinity)
    return replicas, router, blocks


def gpu_cap_w(scenario: Scenario, profile: Profile) -> float | None:
    """The binding per-GPU cap from the GPU-, server- and rack-level caps of the scenario.

    A server cap C is split statically over its g GPUs under the host model of sim/facility.py
    (host = idle + α·Σ(P_gpu − P_idle)): g·c + host(c) ≤ C gives
    c = (C − host_idle + α·g·P_idle) / (g·(1 + α)); a rack cap is split evenly over its servers
    first [I].
    """
    from agentwatt.sim.facility import server_spec
    fac = scenario.facility
    caps = []
    if fac.gpu_cap_w is not None:
        caps.append(fac.gpu_cap_w)
    if fac.server_cap_w is not None or fac.rack_cap_w is not None:
        spec = server_spec(fac.server)
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
