"""One map of metric key → words and unit, for every axis label, table header and report line.

A key is a summary key (``session_e2e_s``, ``gpu_peak_power_w``) or a dotted sweep column
(``session_e2e_s.p99``, ``param.fleet.replicas``, ``by_agent.react-hotpotqa.ttft_s.p95``). ``label``
turns any of them into words with the unit; keys not in the map fall back to the key with its unit
suffix read off (``_s`` → s, ``_w`` → W, ``_j`` → J), never to a bare raw key with no unit.
"""
from __future__ import annotations

import re

# key → (words, unit); unit "" for a count or a ratio
METRICS: dict[str, tuple[str, str]] = {
    "queue_s": ("queueing delay (submit to first scheduled)", "s"),
    "ttft_s": ("time to first token", "s"),
    "tpot_s": ("time per output token", "s"),
    "call_e2e_s": ("LLM call end-to-end", "s"),
    "e2e_s": ("end-to-end", "s"),
    "session_e2e_s": ("session (agent task) end-to-end", "s"),
    "gpus": ("GPUs", ""),
    "replicas": ("replicas", ""),
    "fleet.replicas": ("replicas", ""),
    "fleet.spare_replicas": ("spare replicas", ""),
    "engine.max_num_seqs": ("max sequences per batch", ""),
    "engine.max_num_batched_tokens": ("token budget per step", "tokens"),
    "facility.gpu_power_cap_w": ("GPU power cap", "W"),
    "gpu_utilization": ("GPU utilisation", "share"),
    "prefix_cache_hit_rate": ("prefix-cache hit rate", "share"),
    "kv_peak_utilization": ("KV cache peak utilisation", "share"),
    "kv_mean_utilization": ("KV cache mean utilisation", "share"),
    "preemptions": ("preemptions", ""),
    "sessions_completed": ("sessions completed", ""),
    "calls_completed": ("LLM calls completed", ""),
    "gpu_energy_j": ("GPU energy", "J"),
    "facility_energy_j": ("facility energy", "J"),
    "gpu_avg_power_w": ("GPU average power", "W"),
    "gpu_peak_power_w": ("GPU peak power", "W"),
    "facility_avg_power_w": ("facility average power", "W"),
    "facility_peak_power_w": ("facility peak power", "W"),
    "gpu_energy_per_session_j": ("GPU energy per session", "J"),
    "gpu_energy_per_session_with_idle_j": ("GPU energy per session (fleet, idle included)", "J"),
    "facility_energy_per_session_j": ("facility energy per session", "J"),
    "gpu_energy_per_call_j": ("GPU energy per LLM call", "J"),
    "gpu_energy_per_token_j": ("GPU energy per token (prompt + output)", "J"),
    "gpu_energy_per_output_token_j": ("GPU energy per output token", "J"),
    "facility_energy_per_output_token_j": ("facility energy per output token", "J"),
    "throughput.sessions_per_s": ("session throughput", "sessions/s"),
    "throughput.calls_per_s": ("LLM call throughput", "calls/s"),
    "throughput.output_tokens_per_s": ("output token throughput", "tokens/s"),
    "throughput.output_tokens_per_s_per_gpu": ("output token throughput per GPU", "tokens/s"),
    "throughput.total_tokens_per_s": ("total token throughput", "tokens/s"),
    "gpu_power.p95_w": ("GPU power P95", "W"),
    "gpu_power.peak_w": ("GPU power peak", "W"),
    "gpu_power.mean_w": ("GPU power mean", "W"),
    "facility_power.p95_w": ("facility power P95", "W"),
    "facility_power.peak_w": ("facility power peak", "W"),
    "facility_power.mean_w": ("facility power mean", "W"),
    "workload.0.rate_per_s": ("arrival rate (workload 0)", "sessions/s"),
    "sim_time_s": ("simulated time", "s"),
}

# statistics inside a metric (the last part of a dotted key)
STATS = {"mean": "mean", "n": "n", "peak_w": "peak", "p95_w": "P95", "mean_w": "mean"}
UNITS = (("_per_s", "/s"), ("_s", "s"), ("_w", "W"), ("_j", "J"), ("_usd", "USD"), ("_kg", "kg"))
_PCT = re.compile(r"^p(\d+)(?:_(\d+))?$")

# integer-valued keys: plots use integer ticks for them
COUNTS = {"gpus", "replicas", "fleet.replicas", "fleet.spare_replicas", "engine.max_num_seqs", "preemptions",
          "sessions_completed", "calls_completed", "size"}


def stat_words(stat: str) -> str | None:
    """``p99`` → ``p99``, ``p99_9`` → ``p99.9``, ``mean`` → ``mean``; None if not a statistic."""
    m = _PCT.match(stat)
    if m:
        return f"p{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else "")
    return STATS.get(stat)


def _unit_of(key: str) -> str:
    for suffix, unit in UNITS:
        if key.endswith(suffix):
            return unit
    return ""


def words_unit(key: str) -> tuple[str, str]:
    """(words, unit) of a summary key or dotted sweep column."""
    key = key.removeprefix("param.")
    if key in METRICS:
        return METRICS[key]
    agent = ""
    if key.startswith("by_agent."):
        _, agent, key = key.split(".", 2) if key.count(".") >= 2 else (None, "", key)
        agent = f" ({agent})"
    base, _, stat = key.rpartition(".")
    if base and stat_words(stat) is not None:
        words, unit = words_unit(base)
        return f"{words}, {stat_words(stat)}{agent}", unit
    if key in METRICS:
        w, u = METRICS[key]
        return w + agent, u
    unit = _unit_of(key)
    bare = next((key[:-len(sfx)] for sfx, u in UNITS if unit and key.endswith(sfx) and u == unit), key)
    return bare.replace("_", " ").replace(".", " ") + agent, unit


def label(key: str, scale_unit: str | None = None) -> str:
    """Axis label: ``session (agent task) end-to-end, p99 (s)``; ``scale_unit`` replaces the unit
    (``kW`` for a W series drawn in kilowatts)."""
    words, unit = words_unit(key)
    unit = scale_unit if scale_unit is not None else unit
    return f"{words} ({unit})" if unit else words


def is_count(key: str) -> bool:
    return key.removeprefix("param.") in COUNTS
