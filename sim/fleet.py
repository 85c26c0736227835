"""Wiring: scenario + profile → replicas behind a router. The only place that builds the world."""
from __future__ import annotations

import simpy

from agentwatt.calibrate.profile import Profile
from agentwatt.errors import InputError
from agentwatt.sim.metrics import EnergyBinner
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
    blocks = kv_capacity_tokens(profile, eng) // eng.block_size_tokens
    binner = EnergyBinner(scenario.run.power_resolution_s) if profile.power.available else None
    replicas = [Replica(env, i, profile, num_blocks=blocks, block_size=eng.block_size_tokens,
                        max_num_seqs=eng.max_num_seqs, max_num_batched_tokens=eng.max_num_batched_tokens,
                        prefix_caching=eng.prefix_caching, binner=binner)
                for i in range(scenario.fleet.replicas)]
    router = Router(replicas, scenario.router.policy, scenario.router.session_affinity)
    return replicas, router, binner, blocks
