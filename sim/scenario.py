"""Scenario: a TOML file read into frozen dataclasses, validated once before time 0.

Every error names the file, the table and field, and what was expected, e.g.
``my.toml: [fleet] replicas = 0: expected an integer >= 1``. Unknown keys are errors too (a
misspelt key must not silently take a default). See ``sim/data/default.toml`` for every field.
"""
from __future__ import annotations

import math
import tomllib
import unicodedata
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from agentwatt.core.errors import InputError
from agentwatt.sim.kvtier import LINKS, RETENTION, TIERED



@dataclass(frozen=True, kw_only=True)
class RunConfig:
    seed: int = 1
    duration_s: float = 300.0          # arrivals stop at this simulated time
    drain_timeout_s: float = 600.0     # then wait at most this long for sessions in flight
    power_resolution_s: float = 1.0
    step_trace: bool = False           # keep one row per engine step (Results.steps, steps.csv)
    # latency percentiles of summary.json (keys p50, p99, p99_9 ...): the tail the tool is about
    percentiles: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)
    # latency, throughput and power figures over the steady-state window only (no warm-up, no drain)
    steady_state: bool = False


@dataclass(frozen=True, kw_only=True)
class FleetConfig:
    replicas: int = 1
    # provisioned replicas that serve nothing (N+k spares, capacity held for peaks): their GPUs sit in
    # one power state the whole run: "parked" (no model, clocks down), "idle" (model loaded) or "off"
    spare_replicas: int = 0
    spare_state: str = "parked"


SPARE_STATES = ("parked", "idle", "off")


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    # vLLM engine defaults: max_num_seqs 256, block_size 16, gpu_memory_utilization 0.9 (vLLM
    # engine-args docs); 2048-token step budget with chunked prefill (vLLM's online-serving default).
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    block_size_tokens: int = 16
    gpu_memory_utilization: float = 0.9
    prefix_caching: bool = True
    kv_capacity_tokens: int | None = None   # override the capacity computed from GPU memory
    # While a session waits on a tool: "drop" releases its KV (cached blocks stay evictable in the
    # prefix cache, vLLM's behaviour), "keep" pins it until the session's next call is admitted
    # (dropped first under memory pressure), "ttl" pins it for at most kv_retention_ttl_s.
    kv_retention: str = "drop"
    kv_retention_ttl_s: float = 0.0
    # "offload" and "cost" add a host-memory KV tier (sim/kvtier.py): kv_host_gib_per_gpu GiB of the server's
    # host memory per GPU (default vLLM's swap_space, 4 GiB per GPU: vLLM engine-args docs), over kv_host_link
    # (None: the server's own, sim/kvtier.py SERVER_LINKS), kv_host_latency_s per transfer (0: not modelled, no
    # figure in our references); kv_prefetch loads a session's KV back so that the load ends with its tool
    kv_host_gib_per_gpu: float = 4.0
    kv_host_link: str | None = None
    kv_host_latency_s: float = 0.0
    kv_prefetch: bool = False
    # advance k identical decode steps in one event (same result, fewer events); off = one per step
    step_skipping: bool = True


@dataclass(frozen=True, kw_only=True)
class FacilityConfig:
    """Servers, racks, host power, PUE, caps, carbon and cost (see sim/facility.py for sources)."""

    server: str | None = None          # None: the server of the profile's GPU (sim/facility.py server_name_for)
    servers_per_rack: int = 4          # [I] docs/power.md §8: 600 kW row / 23 racks by TDP = 26 kW = 4 × 6.5 kW DGX A100
    row_power_limit_w: float = 600_000.0   # docs/power.md §8: powertrace-sim's facility study row limit
    pue: float | tuple[float, ...] = 1.1   # Google fleet 2023 (docs/power.md §5.2 [P]); 1.58 = industry average
    network_w_per_rack: float = 0.0    # not modelled unless set: no published figure in our references
    host_dynamic_fraction: float = 0.3  # host W per GPU W above idle (docs/power.md §5.5: 0.2–0.4 from Google's 0.43 ratio)
    gpu_cap_w: float | None = None
    server_cap_w: float | None = None
    rack_cap_w: float | None = None
    carbon_g_per_kwh: float | tuple[float, ...] | None = None   # your grid's; constant or 24 hourly values
    price_usd_per_kwh: float | tuple[float, ...] | None = None
    gpu_hour_usd: float | None = None
    racks_per_row: int | None = None   # None: as many as the row limit allows at nameplate (TDP sizing)
    # An "observed" GPU power column for laying beside a meter's trace (energy accounting uses the
    # model mean): AR(1) noise of this fraction of the power with this correlation time, then a
    # moving-average meter window (e.g. 1 s for NVML's averaged power). 0 = off; no published
    # within-state noise figure exists in our references, so measure it (calibrate on a GPU).
    gpu_noise_frac: float = 0.0
    gpu_noise_corr_s: float = 1.0
    meter_window_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class AutoscaleConfig:
    """``[autoscale]``: start and stop replicas with load (sim/autoscale.py). Off unless the table is
    given. The most replicas is ``[fleet] replicas``; those not running sit in ``stopped_state``. With
    ``[disaggregation]`` each pool is scaled on its own (min and initial per pool, max its size)."""

    # per ready replica: "concurrency" (running + waiting calls), "queue" (waiting), "utilization" (share
    # of the interval running steps) or "predicted" (concurrency extrapolated one warm-up ahead)
    metric: str = "concurrency"
    target_per_replica: float = 1.0    # required in the table: the metric's target per ready replica
    min_replicas: int = 1
    initial_replicas: int | None = None   # None: min_replicas (ready at t = 0, no warm-up)
    # Kubernetes HPA defaults (kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/):
    # --horizontal-pod-autoscaler-sync-period 15 s; behavior.scaleUp.stabilizationWindowSeconds 0,
    # scaleDown 300 s
    interval_s: float = 15.0
    scale_up_delay_s: float = 0.0
    scale_down_delay_s: float = 300.0
    stopped_state: str = "parked"      # a stopped replica's GPUs: "parked" or "off" (core/step.py state_power_w)
    # warm-up = weight bytes / storage bandwidth + engine start, drawing idle power and serving nothing.
    # 7 GB/s: one PCIe 4.0 x4 NVMe drive's sequential read (nuvorix.com/glossary/nvme); 39 s: vLLM's
    # torch.compile phase of a cold start (route179.dev 2026-06-30, "Optimizing vLLM cold start"; a
    # lower bound: profiling and CUDA-graph capture come on top)
    storage_gb_per_s: float = 7.0
    engine_start_s: float = 39.0
    warmup_s: float | None = None      # set: this warm-up instead of the formula


AUTOSCALE_METRICS = ("concurrency", "queue", "utilization", "predicted")


@dataclass(frozen=True, kw_only=True)
class DisaggregationConfig:
    """``[disaggregation]``: a prefill pool and a decode pool joined by a KV link (sim/disagg.py).
    Off unless the table is given; then it sizes the fleet (``[fleet] replicas`` = the sum if set)."""

    prefill_replicas: int = 1
    decode_replicas: int = 1
    prefill_profile: str | None = None   # None: the scenario's profile (same tp required)
    decode_profile: str | None = None
    link: str = "infiniband-ndr"         # a preset of sim/disagg.py LINKS (per-GPU bandwidth, cited there)
    link_gb_per_s: float | None = None   # set: this per-GPU bandwidth instead of the preset's
    link_latency_s: float = 0.0          # per transfer; not modelled unless set (µs on RDMA, ≪ the bytes' time)
    layer_overlap: bool = False          # only the last layer's KV share on the critical path
    prefill_max_num_seqs: int | None = None           # None: [engine]'s
    prefill_max_num_batched_tokens: int | None = None
    decode_max_num_seqs: int | None = None
    decode_max_num_batched_tokens: int | None = None


@dataclass(frozen=True, kw_only=True)
class RouterConfig:
    policy: str = "least_loaded"
    session_affinity: bool = True
    # "prefix_aware": a call goes to the replica holding its longest prefix unless that replica has more
    # than this many outstanding requests above the least loaded one (the SGLang model gateway's cache_aware
    # --balance-abs-threshold default, 64: github.com/lightseekorg/smg docs/getting-started/load-balancing.md).
    # Without prefix caching there is no prefix to follow: it routes as least_loaded.
    prefix_max_imbalance: int = 64


@dataclass(frozen=True, kw_only=True)
class SiteConfig:
    # cells > 1: the fleet as K clusters, each behind its own router, sharing the arrivals in
    # proportion to their replicas; simulated independently and merged (sim/cells.py)
    cells: int = 1


@dataclass(frozen=True, kw_only=True)
class WorkloadClass:
    """One traffic class: a generated agent with an arrival process, or a replayed trace."""

    agent: str | None = None
    knobs: dict[str, Any] = field(default_factory=dict)
    mix: dict[str, float] = field(default_factory=dict)          # agent -> share, one arrival stream
    mix_knobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrival: str = "poisson"          # an arrival process of traces.arrivals, or "closed"
    rate_per_s: float | None = None
    arrival_params: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 1              # closed loop: simultaneous users
    sessions: int | None = None       # closed loop: total sessions (None: until arrivals end)
    think_time_s: float = 0.0         # closed loop: pause between a user's sessions
    trace: str | None = None          # bundled trace name or a path (relative to the scenario)
    format: str = "azure-2023"
    limit: int | None = None          # at most this many trace rows
    time_scale: float = 1.0           # multiply trace inter-arrival times (0.5 = twice the rate)
    retime: bool = False              # trace sessions start at the arrival process's times instead
    repeat: bool = False              # retimed traces: cycle through the trace's sessions again

    @property
    def label(self) -> str:
        if self.mix:
            return "mix:" + "+".join(sorted(self.mix))
        return self.agent if self.agent else f"trace:{Path(self.trace).stem}"


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str = "scenario"
    profile: str = "llama-3.1-8b_a100-40gb"
    run: RunConfig = field(default_factory=RunConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    facility: FacilityConfig = field(default_factory=FacilityConfig)
    workload: tuple[WorkloadClass, ...] = ()
    source: str = "<built-in>"
    site: SiteConfig = field(default_factory=SiteConfig)
    autoscale: AutoscaleConfig | None = None   # [autoscale]: None = a static fleet
    disaggregation: DisaggregationConfig | None = None   # [disaggregation]: None = prefill and decode co-located

    def with_seed(self, seed: int) -> "Scenario":
        return replace(self, run=replace(self.run, seed=seed))


DEFAULT_SCENARIO = "default"


def default_scenario_path() -> Path:
    return Path(str(resources.files("agentwatt.sim") / "data" / "default.toml"))


def load_scenario(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read and validate a scenario TOML file (the built-in default when ``path`` is None).

    ``overrides`` maps dotted keys to values applied before validation, e.g.
    ``{"fleet.replicas": 8, "workload.1.rate_per_s": 2.0, "run.seed": 3}`` (array items by index,
    from 0).
    """
    p = default_scenario_path() if path is None else Path(path)
    where = str(path) if path is not None else "built-in default scenario"
    if not p.exists():
        raise InputError(f"{where}: file not found: expected a scenario TOML file")
    if not p.is_file():   # a FIFO would block forever, /dev/zero fill the memory
        raise InputError(f"{where}: not a regular file (a folder, device or pipe): expected a scenario TOML file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{where}: not UTF-8 text (byte {e.start}): expected a TOML file") from None
    if not text.strip():
        raise InputError(f"{where}: empty file: expected a scenario TOML file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{where}: invalid TOML: {e}") from None
    except (ValueError, RecursionError) as e:   # an integer of > 4,300 digits; arrays nested ~1,000 deep
        raise InputError(f"{where}: invalid TOML ({str(e).splitlines()[0][:80]}): expected a scenario TOML "
                         f"file") from None
    if overrides:
        data = apply_overrides(data, overrides, where)
    return scenario_from_dict(data, where, base_dir=p.parent if path is not None else None)


def apply_overrides(data: dict, overrides: dict[str, Any], where: str = "scenario") -> dict:
    """A copy of ``data`` with dotted-key overrides set (see ``load_scenario``)."""
    import copy
    out = copy.deepcopy(data)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise InputError(f"{where}: override {dotted}: {part!r} is not an index of "
                                     f"{'.'.join(parts[:i]) or 'the file'} (0..{len(node) - 1})")
                node = node[int(part)]
            elif isinstance(node, dict):
                node = node.setdefault(part, {})
            else:
                raise InputError(f"{where}: override {dotted}: {'.'.join(parts[:i])} is not a table")
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise InputError(f"{where}: override {dotted}: expected an index 0..{len(node) - 1}")
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise InputError(f"{where}: override {dotted}: expected a table to set {last!r} in")
    return out


# ------------------------------------------------------------------------------ validation

def _check_keys(d: dict, allowed: set[str], where: str, table: str) -> None:
    for k in d:
        if k not in allowed:
            raise InputError(f"{where}: [{table}] unknown key {k!r}: expected one of {', '.join(sorted(allowed))}")


def _num(d: dict, key: str, default, where: str, table: str, *, integer=False, lo=None, lo_open=False,
         hi=None, optional=False):
    if key not in d:
        return default
    v = d[key]
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or (not integer and not math.isfinite(v)):
        kind = "an integer" if integer else "a number"
        raise InputError(f"{where}: [{table}] {key} = {v!r}: expected {kind}")
    bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and v > hi)
    if bad:
        rng = []
        if lo is not None:
            rng.append(f"{'>' if lo_open else '>='} {lo}")
        if hi is not None:
            rng.append(f"<= {hi}")
        kind = "an integer" if integer else "a number"
        raise InputError(f"{where}: [{table}] {key} = {v!r}: expected {kind} {' and '.join(rng)}")
    return v if integer else float(v)


def _str(d: dict, key: str, default, where: str, table: str, choices=None):
    if key not in d:
        return default
    v = d[key]
    if not isinstance(v, str) or not v:
        raise InputError(f"{where}: [{table}] {key} = {v!r}: expected a non-empty string")
    if choices is not None and v not in choices:
        raise InputError(f"{where}: [{table}] {key} = {v!r}: expected one of {', '.join(choices)}")
    return v


def _bool(d: dict, key: str, default, where: str, table: str):
    if key not in d:
        return default
    v = d[key]
    if not isinstance(v, bool):
        raise InputError(f"{where}: [{table}] {key} = {v!r}: expected true or false")
    return v


def _percentiles(d: dict, default: tuple[float, ...], where: str) -> tuple[float, ...]:
    if "percentiles" not in d:
        return default
    v = d["percentiles"]
    ok = isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                           and 0 < x < 100 for x in v)
    if not ok or len(set(v)) != len(v):
        raise InputError(f"{where}: [run] percentiles = {v!r}: expected a list of distinct numbers > 0 and < 100, "
                         f"e.g. [50, 95, 99, 99.9]")
    return tuple(sorted(float(x) for x in v))


def _table(data: dict, key: str, where: str) -> dict:
    v = data.get(key, {})
    if not isinstance(v, dict):
        raise InputError(f"{where}: [{key}] expected a table")
    return v


def scenario_from_dict(data: dict, where: str = "scenario", base_dir: Path | None = None) -> Scenario:
    _check_keys(data, {"name", "profile", "run", "fleet", "engine", "router", "facility", "workload", "autoscale",
                       "disaggregation", "site"},
                where, "top level")
    name = _str(data, "name", "scenario", where, "top level")
    if any(unicodedata.category(c) == "Cc" for c in name):   # printed to the terminal: no newline, ESC, BEL
        raise InputError(f"{where}: [top level] name = {name!r}: expected printable text (no control characters)")
    profile = _str(data, "profile", Scenario.profile, where, "top level")
    if base_dir is not None and (profile.endswith(".json") or "/" in profile):
        profile = str((base_dir / profile)) if not Path(profile).is_absolute() else profile

    t = _table(data, "run", where)
    _check_keys(t, {"seed", "duration_s", "drain_timeout_s", "power_resolution_s", "step_trace", "percentiles",
                    "steady_state"}, where, "run")
    d = RunConfig()
    run = RunConfig(seed=_num(t, "seed", d.seed, where, "run", integer=True, lo=0, hi=2**63 - 1),
                    duration_s=_num(t, "duration_s", d.duration_s, where, "run", lo=0, lo_open=True, hi=1e9),
                    drain_timeout_s=_num(t, "drain_timeout_s", d.drain_timeout_s, where, "run", lo=0, hi=1e9),
                    power_resolution_s=_num(t, "power_resolution_s", d.power_resolution_s, where, "run",
                                            lo=0.001, hi=86400),
                    step_trace=_bool(t, "step_trace", d.step_trace, where, "run"),
                    percentiles=_percentiles(t, d.percentiles, where),
                    steady_state=_bool(t, "steady_state", d.steady_state, where, "run"))

    t = _table(data, "fleet", where)
    _check_keys(t, {"replicas", "spare_replicas", "spare_state"}, where, "fleet")
    fleet = FleetConfig(replicas=_num(t, "replicas", 1, where, "fleet", integer=True, lo=1, hi=1_000_000),
                        spare_replicas=_num(t, "spare_replicas", 0, where, "fleet", integer=True, lo=0, hi=1_000_000),
                        spare_state=_str(t, "spare_state", "parked", where, "fleet", choices=SPARE_STATES))

    t = _table(data, "engine", where)
    e = EngineConfig()
    _check_keys(t, set(e.__dataclass_fields__), where, "engine")
    engine = EngineConfig(
        max_num_seqs=_num(t, "max_num_seqs", e.max_num_seqs, where, "engine", integer=True, lo=1, hi=1_000_000),
        max_num_batched_tokens=_num(t, "max_num_batched_tokens", e.max_num_batched_tokens, where, "engine",
                                    integer=True, lo=1, hi=10_000_000),
        block_size_tokens=_num(t, "block_size_tokens", e.block_size_tokens, where, "engine", integer=True, lo=1, hi=4096),
        gpu_memory_utilization=_num(t, "gpu_memory_utilization", e.gpu_memory_utilization, where, "engine",
                                    lo=0, lo_open=True, hi=1),
        prefix_caching=_bool(t, "prefix_caching", e.prefix_caching, where, "engine"),
        kv_capacity_tokens=_num(t, "kv_capacity_tokens", None, where, "engine", integer=True, lo=1, hi=10**12),
        kv_retention=_str(t, "kv_retention", e.kv_retention, where, "engine", choices=RETENTION),
        kv_retention_ttl_s=_num(t, "kv_retention_ttl_s", 0.0, where, "engine", lo=0, hi=1e9),
        kv_host_gib_per_gpu=_num(t, "kv_host_gib_per_gpu", e.kv_host_gib_per_gpu, where, "engine", lo=0, lo_open=True,
                                 hi=1e6),
        kv_host_link=_str(t, "kv_host_link", None, where, "engine", choices=tuple(LINKS)),
        kv_host_latency_s=_num(t, "kv_host_latency_s", 0.0, where, "engine", lo=0, hi=1e3),
        kv_prefetch=_bool(t, "kv_prefetch", e.kv_prefetch, where, "engine"),
        step_skipping=_bool(t, "step_skipping", e.step_skipping, where, "engine"),
    )
    if engine.kv_capacity_tokens is not None and engine.kv_capacity_tokens < engine.block_size_tokens:
        raise InputError(f"{where}: [engine] kv_capacity_tokens = {engine.kv_capacity_tokens}: expected at least one "
                         f"block (block_size_tokens = {engine.block_size_tokens})")
    if engine.kv_retention == "ttl" and engine.kv_retention_ttl_s <= 0:
        raise InputError(f"{where}: [engine] kv_retention = \"ttl\": expected kv_retention_ttl_s > 0")
    if engine.kv_retention in TIERED and not engine.prefix_caching:
        raise InputError(f"{where}: [engine] kv_retention = {engine.kv_retention!r}: expected prefix_caching = true "
                         f"(the host tier stores blocks by content hash)")

    t = _table(data, "router", where)
    _check_keys(t, {"policy", "session_affinity", "prefix_max_imbalance"}, where, "router")
    from agentwatt.sim.router import ROUTERS
    router = RouterConfig(policy=_str(t, "policy", "least_loaded", where, "router", choices=tuple(ROUTERS)),
                          session_affinity=_bool(t, "session_affinity", True, where, "router"),
                          prefix_max_imbalance=_num(t, "prefix_max_imbalance", RouterConfig.prefix_max_imbalance, where,
                                                    "router", integer=True, lo=0, hi=10**9))

    facility = _facility(_table(data, "facility", where), where)

    wl = data.get("workload")
    if wl is None or (isinstance(wl, list) and not wl):
        raise InputError(f"{where}: [[workload]] missing: expected at least one workload class")
    if not isinstance(wl, list):
        raise InputError(f"{where}: workload: expected an array of tables [[workload]]")
    classes = tuple(_workload(w, i, where, base_dir) for i, w in enumerate(wl))
    disagg = None
    pool_max = fleet.replicas   # the most replicas an autoscaler may run (per pool with [disaggregation])
    if "disaggregation" in data:
        disagg = _disaggregation(data["disaggregation"], where, base_dir)
        n = disagg.prefill_replicas + disagg.decode_replicas
        if "replicas" in data.get("fleet", {}) and fleet.replicas != n:
            raise InputError(f"{where}: [fleet] replicas = {fleet.replicas}: expected {n}, the prefill_replicas + "
                             f"decode_replicas of [disaggregation] (or leave it out)")
        if fleet.spare_replicas:
            raise InputError(f"{where}: [disaggregation] with [fleet] spare_replicas: expected one of them (not "
                             f"modelled together)")
        if engine.kv_retention in TIERED:
            raise InputError(f"{where}: [disaggregation] with [engine] kv_retention = {engine.kv_retention!r}: "
                             f"expected drop, keep or ttl (a host KV tier beside a prefill/decode split is not "
                             f"modelled)")
        fleet = replace(fleet, replicas=n)
        pool_max = min(disagg.prefill_replicas, disagg.decode_replicas)
    autoscale = _autoscale(data["autoscale"], pool_max, where) if "autoscale" in data else None
    t = _table(data, "site", where)
    _check_keys(t, {"cells"}, where, "site")
    site = SiteConfig(cells=_num(t, "cells", 1, where, "site", integer=True, lo=1, hi=fleet.replicas))
    if site.cells > 1:
        if autoscale is not None or disagg is not None:
            raise InputError(f"{where}: [site] cells = {site.cells} with [autoscale] or [disaggregation]: expected "
                             f"one of them (not modelled together)")
        from agentwatt.sim.cells import check_splittable
        check_splittable(classes, site.cells, where)
    return Scenario(name=name, profile=profile, run=run, fleet=fleet, engine=engine, router=router,
                    facility=facility, workload=classes, source=where, autoscale=autoscale, disaggregation=disagg,
                    site=site)


def _disaggregation(t: Any, where: str, base_dir: Path | None) -> DisaggregationConfig:
    from agentwatt.sim.disagg import LINKS
    if not isinstance(t, dict):
        raise InputError(f"{where}: [disaggregation] expected a table")
    d, tab = DisaggregationConfig(), "disaggregation"
    _check_keys(t, set(d.__dataclass_fields__), where, tab)
    for k in ("prefill_replicas", "decode_replicas"):
        if k not in t:
            raise InputError(f"{where}: [disaggregation] {k} missing: expected an integer >= 1")
    profiles = {}
    for k in ("prefill_profile", "decode_profile"):
        p = _str(t, k, None, where, tab)
        if p is not None and base_dir is not None and (p.endswith(".json") or "/" in p) and not Path(p).is_absolute():
            p = str(base_dir / p)
        profiles[k] = p

    def limit(k):
        return _num(t, k, None, where, tab, integer=True, lo=1, hi=10_000_000)
    return DisaggregationConfig(
        prefill_replicas=_num(t, "prefill_replicas", 1, where, tab, integer=True, lo=1, hi=1_000_000),
        decode_replicas=_num(t, "decode_replicas", 1, where, tab, integer=True, lo=1, hi=1_000_000),
        **profiles,
        link=_str(t, "link", d.link, where, tab, choices=tuple(LINKS)),
        link_gb_per_s=_num(t, "link_gb_per_s", None, where, tab, lo=0, lo_open=True, hi=1e6),
        link_latency_s=_num(t, "link_latency_s", 0.0, where, tab, lo=0, hi=60),
        layer_overlap=_bool(t, "layer_overlap", False, where, tab),
        prefill_max_num_seqs=limit("prefill_max_num_seqs"),
        prefill_max_num_batched_tokens=limit("prefill_max_num_batched_tokens"),
        decode_max_num_seqs=limit("decode_max_num_seqs"),
        decode_max_num_batched_tokens=limit("decode_max_num_batched_tokens"))


def _autoscale(t: Any, n: int, where: str) -> AutoscaleConfig:
    if not isinstance(t, dict):
        raise InputError(f"{where}: [autoscale] expected a table")
    d, tab = AutoscaleConfig(), "autoscale"
    _check_keys(t, set(d.__dataclass_fields__), where, tab)
    if "target_per_replica" not in t:
        raise InputError(f"{where}: [autoscale] target_per_replica missing: expected a number > 0 (the metric's "
                         f"target per ready replica)")
    lo = _num(t, "min_replicas", d.min_replicas, where, tab, integer=True, lo=1, hi=n)
    cfg = AutoscaleConfig(
        metric=_str(t, "metric", d.metric, where, tab, choices=AUTOSCALE_METRICS),
        target_per_replica=_num(t, "target_per_replica", None, where, tab, lo=0, lo_open=True, hi=1e9),
        min_replicas=lo,
        initial_replicas=_num(t, "initial_replicas", lo, where, tab, integer=True, lo=lo, hi=n),
        interval_s=_num(t, "interval_s", d.interval_s, where, tab, lo=0, lo_open=True, hi=1e7),
        scale_up_delay_s=_num(t, "scale_up_delay_s", d.scale_up_delay_s, where, tab, lo=0, hi=1e7),
        scale_down_delay_s=_num(t, "scale_down_delay_s", d.scale_down_delay_s, where, tab, lo=0, hi=1e7),
        stopped_state=_str(t, "stopped_state", d.stopped_state, where, tab, choices=("parked", "off")),
        storage_gb_per_s=_num(t, "storage_gb_per_s", d.storage_gb_per_s, where, tab, lo=0, lo_open=True, hi=1e6),
        engine_start_s=_num(t, "engine_start_s", d.engine_start_s, where, tab, lo=0, hi=1e6),
        warmup_s=_num(t, "warmup_s", None, where, tab, lo=0, hi=1e7))
    if cfg.metric == "utilization" and cfg.target_per_replica > 1:
        raise InputError(f"{where}: [autoscale] target_per_replica = {cfg.target_per_replica:g}: expected a share "
                         f"of time in (0, 1] with metric = \"utilization\"")
    return cfg


def _num_or_hourly(t: dict, key: str, default, where: str, lo: float, hi: float):
    if key not in t:
        return default
    v = t[key]
    if isinstance(v, list):
        if len(v) != 24:
            raise InputError(f"{where}: [facility] {key}: {len(v)} values: expected one number or 24 hourly values")
        return tuple(_num({"v": x}, "v", None, where, f"facility] [{key}", lo=lo, hi=hi) for x in v)
    return _num(t, key, default, where, "facility", lo=lo, hi=hi)


def _facility(t: dict, where: str) -> FacilityConfig:
    from agentwatt.sim.facility import SERVER_SPECS
    d = FacilityConfig()
    _check_keys(t, set(d.__dataclass_fields__), where, "facility")
    return FacilityConfig(
        server=_str(t, "server", d.server, where, "facility", choices=tuple(sorted(SERVER_SPECS))),
        servers_per_rack=_num(t, "servers_per_rack", d.servers_per_rack, where, "facility", integer=True, lo=1, hi=10_000),
        row_power_limit_w=_num(t, "row_power_limit_w", d.row_power_limit_w, where, "facility", lo=0, lo_open=True, hi=1e12),
        pue=_num_or_hourly(t, "pue", d.pue, where, lo=1.0, hi=5.0),
        network_w_per_rack=_num(t, "network_w_per_rack", d.network_w_per_rack, where, "facility", lo=0, hi=1e7),
        host_dynamic_fraction=_num(t, "host_dynamic_fraction", d.host_dynamic_fraction, where, "facility", lo=0, hi=10),
        gpu_cap_w=_num(t, "gpu_cap_w", None, where, "facility", lo=0, lo_open=True, hi=1e5),
        server_cap_w=_num(t, "server_cap_w", None, where, "facility", lo=0, lo_open=True, hi=1e7),
        rack_cap_w=_num(t, "rack_cap_w", None, where, "facility", lo=0, lo_open=True, hi=1e9),
        carbon_g_per_kwh=_num_or_hourly(t, "carbon_g_per_kwh", None, where, lo=0.0, hi=1e5),
        price_usd_per_kwh=_num_or_hourly(t, "price_usd_per_kwh", None, where, lo=0.0, hi=1e4),
        gpu_hour_usd=_num(t, "gpu_hour_usd", None, where, "facility", lo=0, hi=1e6),
        racks_per_row=_num(t, "racks_per_row", None, where, "facility", integer=True, lo=1, hi=100_000),
        gpu_noise_frac=_num(t, "gpu_noise_frac", 0.0, where, "facility", lo=0, hi=1),
        gpu_noise_corr_s=_num(t, "gpu_noise_corr_s", 1.0, where, "facility", lo=0, lo_open=True, hi=1e6),
        meter_window_s=_num(t, "meter_window_s", 0.0, where, "facility", lo=0, hi=1e6),
    )


_WORKLOAD_KEYS = {"agent", "mix", "knobs", "arrival", "rate_per_s", "arrival_params", "concurrency", "sessions",
                  "think_time_s", "trace", "format", "limit", "time_scale", "repeat"}


def _arrival_kinds() -> tuple[str, ...]:
    from agentwatt.traces import arrivals
    return tuple(sorted(getattr(arrivals, "ARRIVALS", {"poisson": None}))) + ("closed",)


def _check_agent(name: str, knobs: Any, where: str, table: str) -> None:
    from agentwatt.traces.agents import make_agent
    if not isinstance(knobs, dict):
        raise InputError(f"{where}: [{table}] knobs = {knobs!r}: expected a table")
    try:
        make_agent(name, **knobs)
    except InputError as err:
        raise InputError(f"{where}: [{table}] {err}") from None


def _check_arrivals(kind: str, rate: float | None, params: dict, where: str, table: str) -> None:
    import numpy as np
    from agentwatt.traces import arrivals
    if not hasattr(arrivals, "make_arrivals"):
        if params:
            raise InputError(f"{where}: [{table}] arrival_params: expected none for arrival = {kind!r}")
        return
    p = dict(params)
    if rate is not None:
        p.setdefault("rate_per_s", rate)
    try:
        next(iter(arrivals.make_arrivals(kind, np.random.default_rng(0), p, 0.0, 1.0)), None)
    except InputError as err:
        raise InputError(f"{where}: [{table}] {err}") from None


def _workload(w: Any, i: int, where: str, base_dir: Path | None) -> WorkloadClass:
    table = f"workload #{i + 1}"
    if not isinstance(w, dict):
        raise InputError(f"{where}: [{table}] expected a table")
    _check_keys(w, _WORKLOAD_KEYS, where, table)
    agent = _str(w, "agent", None, where, table)
    trace = _str(w, "trace", None, where, table)
    mix = w.get("mix")
    if sum(x is not None for x in (agent, trace, mix)) != 1:
        raise InputError(f"{where}: [{table}] expected exactly one of agent = \"...\", mix = {{...}} or trace = \"...\"")
    if trace is None:
        return _generated_class(w, agent, mix, where, table)
    for k in ("knobs", "concurrency", "sessions", "think_time_s"):
        if k in w:
            raise InputError(f"{where}: [{table}] {k}: not used with trace = ...")
    retime = "arrival" in w or "rate_per_s" in w
    rate, arrival, params = None, "poisson", {}
    if retime:
        # the trace's sessions, started at the times of an arrival process (e.g. agent sessions
        # recorded without absolute times)
        arrival = _str(w, "arrival", "poisson", where, table,
                       choices=tuple(k for k in _arrival_kinds() if k not in ("closed", "trace")))
        params = w.get("arrival_params", {})
        if not isinstance(params, dict):
            raise InputError(f"{where}: [{table}] arrival_params = {params!r}: expected a table")
        if "rate_per_s" in w:
            rate = _num(w, "rate_per_s", None, where, table, lo=0, lo_open=True, hi=1e7)
        _check_arrivals(arrival, rate, params, where, table)
        if "time_scale" in w:
            raise InputError(f"{where}: [{table}] time_scale: not used when an arrival process retimes the trace")
    elif "arrival_params" in w or "repeat" in w:
        raise InputError(f"{where}: [{table}] arrival_params/repeat: expected arrival = \"...\" to retime the trace")
    from agentwatt.traces.loaders import BUNDLED_TRACES
    if trace not in BUNDLED_TRACES:
        tp = Path(trace)
        if base_dir is not None and not tp.is_absolute():
            tp = base_dir / tp
        if not tp.exists():
            raise InputError(f"{where}: [{table}] trace = {trace!r}: file not found: expected a path or one of "
                             f"the bundled traces {', '.join(sorted(BUNDLED_TRACES))}")
        trace = str(tp)
    from agentwatt.traces import loaders
    formats = tuple(sorted(getattr(loaders, "LOADERS", {"azure-2023": None})))
    return WorkloadClass(trace=trace, format=_str(w, "format", "azure-2023", where, table, choices=formats),
                         limit=_num(w, "limit", None, where, table, integer=True, lo=1),
                         time_scale=_num(w, "time_scale", 1.0, where, table, lo=0, lo_open=True, hi=1e6),
                         retime=retime, arrival=arrival, rate_per_s=rate, arrival_params=dict(params),
                         repeat=_bool(w, "repeat", False, where, table))


def _generated_class(w: dict, agent: str | None, mix: Any, where: str, table: str) -> WorkloadClass:
    knobs = w.get("knobs", {})
    mix_knobs: dict[str, dict] = {}
    if mix is not None:
        if not isinstance(mix, dict) or not mix:
            raise InputError(f"{where}: [{table}] mix = {mix!r}: expected a table of agent = share")
        for name, share in mix.items():
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not (share > 0) or share == float("inf"):
                raise InputError(f"{where}: [{table}] mix.{name} = {share!r}: expected a share > 0")
        if not isinstance(knobs, dict):
            raise InputError(f"{where}: [{table}] knobs = {knobs!r}: expected a table of agent = {{knob = value}}")
        for name in knobs:
            if name not in mix:
                raise InputError(f"{where}: [{table}] knobs.{name}: expected knobs only for agents in the mix")
        for name in mix:
            mix_knobs[name] = knobs.get(name, {})
            _check_agent(name, mix_knobs[name], where, table)
        mix = {k: float(v) for k, v in mix.items()}
        knobs = {}
    else:
        _check_agent(agent, knobs, where, table)
        mix = {}
    arrival = _str(w, "arrival", "poisson", where, table, choices=_arrival_kinds())
    params = w.get("arrival_params", {})
    if not isinstance(params, dict):
        raise InputError(f"{where}: [{table}] arrival_params = {params!r}: expected a table")
    if arrival == "closed":
        for k in ("rate_per_s", "arrival_params"):
            if k in w:
                raise InputError(f"{where}: [{table}] {k}: not used with arrival = \"closed\" (users start sessions "
                                 f"back to back): expected concurrency, sessions, think_time_s")
        return WorkloadClass(agent=agent, knobs=dict(knobs), mix=mix, mix_knobs=mix_knobs, arrival=arrival,
                             concurrency=_num(w, "concurrency", 1, where, table, integer=True, lo=1, hi=10_000_000),
                             sessions=_num(w, "sessions", None, where, table, integer=True, lo=1),
                             think_time_s=_num(w, "think_time_s", 0.0, where, table, lo=0, hi=1e9))
    for k in ("concurrency", "sessions", "think_time_s"):
        if k in w:
            raise InputError(f"{where}: [{table}] {k}: only used with arrival = \"closed\"")
    rate = None
    if "rate_per_s" in w:
        rate = _num(w, "rate_per_s", None, where, table, lo=0, lo_open=True, hi=1e7)
    elif arrival == "poisson" and "rate_per_s" not in params:
        raise InputError(f"{where}: [{table}] rate_per_s missing: expected a number > 0 (sessions per second)")
    _check_arrivals(arrival, rate, params, where, table)
    return WorkloadClass(agent=agent, knobs=dict(knobs), mix=mix, mix_knobs=mix_knobs, arrival=arrival,
                         rate_per_s=rate, arrival_params=dict(params))
