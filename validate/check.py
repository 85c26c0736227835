"""``agentwatt calibrate check``: does a measured profile predict a real serving loop on its device?

    profile (measured) ─► rebuild its preset model the way calibrate did (preset, seed, dtype, threads)
      ─► generate requests (seeded Poisson arrivals, fixed or lognormal lengths)
      ─► serve them for real (validate/serve.py: the simulator's scheduler, batchstep model steps)
      ─► replay the same arrivals and lengths in the simulator with the profile
         (sim.run.run(..., sessions=...) with one single-call session per request, [engine] as
         in the loop, prefix caching off)
      ─► errors of p50/p99 TTFT and end-to-end latency, energy per request, and where a power
         series exists the validate/powercompare.py metrics (ΔE, ACF R², KS, P95/P99)

A second profile is fitted to the loop's own step trace (``validate/serve.py`` ``trace_rows``, the
format of ``agentwatt calibrate fit-trace``) on the steps before the arrival of the first half of the
requests, and checked beside the micro-benchmark profile on the rest (``step_trace_check``): the
step-time error of the later steps and the replay's latency errors for the later requests. It
removes the micro-benchmark vs serving mismatch (loop costs, padded attention, the machine's speed
now) that the probes below only explain.

Errors are (simulated − measured) / measured. Two simulations are reported: the profile as
calibrated, and the profile plus the loop's own costs measured in the same run (the mean per-step
time outside the model, the padded decode attention's extra KV reads, the step code's extra over the
sweep's on identical work): the second says how much of the first's error those costs explain. A
third, diagnostic only, also scales the profile by the machine's speed now (``drift`` below); what
it leaves is the step model's own error at this workload. Two probes help read a miss: ``drift`` re-times
a few of the profile's own sweep points before and after the loop (the machine's speed now vs at
calibration), and ``steps`` compares every loop step with the profile's prediction for its
features.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from agentwatt.core.profile import LatencyModel, Profile, load_profile
from agentwatt.validate.serve import RequestSpec, ServeResult, generate_requests, serve
from agentwatt.core.errors import InputError
from agentwatt.traces.schema import LLMCall, Segment, Session

GOALS = {"latency_p50": 0.05, "latency_p99": 0.10, "energy_per_request": 0.05, "acf_r2": 0.95}
TRACE_FIT_PART = 0.5          # the step-trace profile is fitted to the steps before the arrival of this share of requests
TARGET_BATCH_FRACTION = 0.25  # default arrival rate: a mean decode batch of this fraction of max_num_seqs
PROBE_MAX_STEP_S = 0.1        # the drift probe re-times only sweep points at most this long


@dataclass(frozen=True, kw_only=True)
class CheckSettings:
    minutes: float = 2.0
    rate_per_s: float | None = None          # default: default_rate(profile, ...)
    seed: int = 0
    prompt_tokens: int = 128
    output_tokens: int = 64
    lengths: str = "lognormal"
    max_num_seqs: int | None = None          # default: the largest decode batch the profile measured
    max_num_batched_tokens: int | None = None  # default: the longest prompt the profile measured
    clock: str = "auto"                      # auto | virtual | wall


# ------------------------------------------------------------------------------ pure helpers

def measured_range(profile: Profile) -> dict[str, int]:
    """Largest decode batch, prompt length and context the profile's sweep measured."""
    m = profile.measurements
    dec = [r for r in m if r.get("phase") == "decode"]
    pre = [r for r in m if r.get("phase") == "prefill"]
    return {"max_decode_batch": max((int(r["batch"]) for r in dec), default=16),
            "max_prompt": max((int(r.get("prompt_len", 0)) for r in pre), default=512),
            "max_context": max((int(r.get("context_len", 0)) for r in dec), default=2048)}


def default_rate(lat: LatencyModel, prompt: float, output: float, max_num_seqs: int) -> float:
    """Arrivals per second that keep about ``b = TARGET_BATCH_FRACTION x max_num_seqs`` requests decoding.

    Little's law with the profile: ``b = rate x e2e``, where a request's ``e2e`` is ``output`` decode
    steps of ``b`` sequences, stretched by the share of time prompts take (``rate x prefill work``):
    ``rate = b / (output x step(b) + b x prefill(prompt))``, context taken at ``prompt + output/2``."""
    b = max(1.0, TARGET_BATCH_FRACTION * max_num_seqs)
    step = lat.step_s(0, 0, b, b * (prompt + output / 2))
    return b / (output * step + b * lat.prefill_part_s(prompt, prompt * prompt))


def pct_error(sim: float, measured: float) -> float:
    return (sim - measured) / measured if measured else float("nan")


def latency_stats(x: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(x, 50)), "p99": float(np.percentile(x, 99)), "mean": float(np.mean(x))}


def compare_latency(measured: dict[str, np.ndarray], simulated: dict[str, np.ndarray]) -> dict[str, Any]:
    out = {}
    for k in ("ttft_s", "e2e_s"):
        m, s = latency_stats(measured[k]), latency_stats(simulated[k])
        out[k] = {"measured": m, "simulated": s, "error": {q: pct_error(s[q], m[q]) for q in m}}
    return out


def request_sessions(specs: list[RequestSpec]) -> list[Session]:
    """The requests as single-call sessions (one prompt segment unique to each, no tools), in order."""
    return [Session(id=i, agent="calibrate-check", arrival_s=s.arrival_s,
                    nodes=(LLMCall(id=0, prompt=(Segment(f"s{i}:q", s.prompt_tokens),), output_tokens=s.output_tokens,
                                   output_key=f"s{i}:o0"),))
            for i, s in enumerate(specs)]


def replay_scenario(specs: list[RequestSpec], *, profile_name: str, seed: int, max_num_seqs: int,
                    max_num_batched_tokens: int, kv_capacity_tokens: int, block_size: int = 16):
    """A one-replica scenario with the loop's engine settings, for replaying ``specs``."""
    from agentwatt.sim.scenario import scenario_from_dict
    last = max(s.arrival_s for s in specs)
    return scenario_from_dict({
        "name": "calibrate check replay", "profile": profile_name,
        "run": {"seed": seed, "duration_s": last + 1.0, "drain_timeout_s": 1e8, "power_resolution_s": 1.0},
        "fleet": {"replicas": 1},
        "engine": {"max_num_seqs": max_num_seqs, "max_num_batched_tokens": max_num_batched_tokens,
                   "block_size_tokens": block_size, "prefix_caching": False, "kv_capacity_tokens": kv_capacity_tokens},
        # a placeholder class: run(..., sessions=...) replays the requests instead
        "workload": [{"agent": "synthetic-fixed", "rate_per_s": 1.0}],
    }, where="calibrate check replay")


def simulate_replay(profile: Profile, specs: list[RequestSpec], **engine) -> dict[str, Any]:
    """Per-request TTFT, e2e and energy (arrays in request order) and the power series of a replay."""
    from agentwatt.sim.run import run
    res = run(replay_scenario(specs, profile_name=profile.name, **engine), profile=profile,
              sessions=request_sessions(specs))
    calls = res.calls.sort_values("session_id")
    if len(calls) != len(specs) or (calls["status"] != "finished").any():
        raise RuntimeError(f"replay finished {int((calls['status'] == 'finished').sum())} of {len(specs)} requests")
    out = {"ttft_s": (calls["first_token_s"] - calls["submit_s"]).to_numpy(),
           "e2e_s": (calls["finish_s"] - calls["submit_s"]).to_numpy(),
           "energy_j": calls["energy_j"].to_numpy() if profile.power.available else None, "power": None}
    if res.power is not None:  # bin centres, to match the sampler's interval midpoints
        half = 0.5 * float(res.scenario.run.power_resolution_s)
        out["power"] = (res.power["time_s"].to_numpy() + half, res.power["gpu_power_w"].to_numpy())
    return out


def step_comparison(steps, lat: LatencyModel) -> dict[str, Any]:
    """Every loop step against the profile's prediction for its features, by step kind."""
    kinds: dict[str, list[tuple[float, float, float]]] = {"decode only": [], "prefill only": [], "mixed": []}
    for s in steps:
        k = "mixed" if s.prefill_tokens and s.decode_seqs else ("prefill only" if s.prefill_tokens else "decode only")
        pred = lat.step_s(s.prefill_tokens, s.prefill_attn, s.decode_seqs, s.decode_ctx)
        kinds[k].append((s.total_s, s.forward_s, pred))
    out: dict[str, Any] = {}
    for k, rows in kinds.items():
        if not rows:
            continue
        a = np.array(rows)
        out[k] = {"steps": len(rows), "median_measured_over_profile": float(np.median(a[:, 0] / a[:, 2])),
                  "median_forward_over_profile": float(np.median(a[:, 1] / a[:, 2])),
                  "mape": float(np.mean(np.abs(a[:, 0] - a[:, 2]) / a[:, 0]))}
    allr = np.array([[s.total_s, lat.step_s(s.prefill_tokens, s.prefill_attn, s.decode_seqs, s.decode_ctx)]
                     for s in steps])
    out["all"] = {"steps": len(steps), "median_measured_over_profile": float(np.median(allr[:, 0] / allr[:, 1])),
                  "measured_s": float(allr[:, 0].sum()), "profile_s": float(allr[:, 1].sum())}
    return out


# ------------------------------------------------------------------------------ probes (torch)

def drift_probe(model, profile: Profile, timer: Callable[[], float], sync: Callable[[], None], seed: int,
                max_points: int = 4, repeats: int = 5) -> dict[str, Any]:
    """Re-time a few sweep points of the profile now; ratio = now / at calibration (geometric mean)."""
    from agentwatt.calibrate.bench import SweepPoint, make_step, time_steps
    pts = sorted((r for r in profile.measurements if not r.get("holdout") and r["time_s"] <= PROBE_MAX_STEP_S),
                 key=lambda r: r["time_s"])
    if not pts:
        return {"ratio": None, "points": []}
    pick = [pts[int(i)] for i in np.unique(np.linspace(0, len(pts) - 1, max_points).round())]
    rows = []
    for r in pick:
        length = int(r.get("prompt_len") or r.get("context_len"))
        step = make_step(model, SweepPoint(phase=r["phase"], batch=int(r["batch"]), length=length), seed)
        now = float(np.median(time_steps(step, repeats, 1, sync, timer)))
        rows.append({"point": f"{r['phase']} b{r['batch']} {'prompt' if r['phase'] == 'prefill' else 'ctx'}{length}",
                     "calibration_s": float(r["time_s"]), "now_s": now, "ratio": now / float(r["time_s"])})
    return {"ratio": float(np.exp(np.mean(np.log([x["ratio"] for x in rows])))), "points": rows}


def path_probe(model, batch: int, context: int, timer: Callable[[], float], sync: Callable[[], None],
               repeats: int = 15) -> dict[str, Any]:
    """The loop's step code (``batchstep.model_step``) against the sweep's batched decode on identical
    work (``batch`` sequences at one context): the extra time of the loop's path per step."""
    from agentwatt.calibrate.batchstep import KVPool, Segment, model_step
    from agentwatt.calibrate.models import decode_step, new_kv_cache, random_token_ids
    g = torch.Generator().manual_seed(0)
    ids = random_token_ids(model, batch, 1, g)
    cache = new_kv_cache(model, batch, context + 1, random_fill=True)
    pool = KVPool.allocate(model, batch, context + 1)
    segs = [Segment(ids[j], context, j, decode=True) for j in range(batch)]
    tb, tl = [], []
    for i in range(repeats + 1):  # interleaved pairs; the first pair warms up
        for fn, acc in ((lambda: decode_step(model, ids, cache, context), tb),
                        (lambda: model_step(model, pool, segs), tl)):
            t0 = timer()
            fn()
            sync()
            if i:
                acc.append(timer() - t0)
    b, lp = float(np.median(tb)), float(np.median(tl))
    extra = float(np.median(np.subtract(tl, tb)))  # paired: both sides of a pair see the same machine state
    return {"batch": batch, "context": context, "sweep_decode_s": b, "loop_decode_s": lp, "extra_per_step_s": extra,
            "repeats": repeats}


# ------------------------------------------------------------------------------ the check

def _load_checkable(path: str | Path) -> Profile:
    prof = load_profile(path)
    if prof.source != "measured" or "preset" not in prof.provenance:
        raise InputError(f"{path}: source = {prof.source!r}: expected a measured profile written by "
                         f"agentwatt calibrate (the check rebuilds its preset model on this machine)")
    return prof


def check(profile_path: str | Path, device: str | None = None, settings: CheckSettings = CheckSettings(),
          out: Path | None = None, *, meter=None, progress: bool = False, steps_out: Path | None = None) -> dict[str, Any]:
    """Run the fidelity check; returns the report (and writes it to ``out`` as JSON, and the serving
    loop's step trace to ``steps_out`` as CSV)."""
    from agentwatt.calibrate.meters import pick_meter
    from agentwatt.calibrate.run import resolve_device
    prof = _load_checkable(profile_path)
    prov = prof.provenance
    dev_name = device or str(prov.get("device", "cpu"))
    dev = resolve_device(dev_name)
    if dev.type != torch.device(str(prov.get("device", "cpu"))).type:
        raise InputError(f"--device {dev_name}: the profile was measured on {prov.get('device')}: expected the same device")
    if not (settings.minutes > 0):
        raise InputError(f"--minutes = {settings.minutes}: expected a number > 0")
    if settings.rate_per_s is not None and not (settings.rate_per_s > 0):
        raise InputError(f"--rate = {settings.rate_per_s}: expected a number > 0 (requests per second)")
    if settings.clock not in ("auto", "virtual", "wall"):
        raise InputError(f"--clock {settings.clock!r}: expected auto, virtual or wall")
    before = torch.get_num_threads()
    threads = int(prov.get("threads") or 1) if dev.type == "cpu" else None
    if threads:
        torch.set_num_threads(threads)
    try:
        return _check(prof, str(profile_path), dev, settings, out, meter or pick_meter(str(dev)), progress, steps_out)
    finally:
        torch.set_num_threads(before)


def _check(prof: Profile, where: str, dev: torch.device, st: CheckSettings, out: Path | None, meter,
           progress: bool, steps_out: Path | None = None) -> dict[str, Any]:
    from agentwatt.calibrate.models import build_model, get_preset
    from agentwatt.calibrate.run import sync_for, cpu_model_name, step_timer
    t_start = time.perf_counter()
    prov = prof.provenance
    notes: list[str] = []
    model = build_model(get_preset(prov["preset"]), dev, seed=int(prov.get("seed", 0)))
    timer_name, timer = step_timer(dev)
    if timer_name != prov.get("step_timer", timer_name):
        notes.append(f"steps timed with {timer_name}; the profile's sweep used {prov.get('step_timer')}")
    here = cpu_model_name() if dev.type == "cpu" else torch.cuda.get_device_name(dev)
    if here != prof.hardware.device_name:
        notes.append(f"this device is {here!r}; the profile was measured on {prof.hardware.device_name!r}")
    sync = sync_for(dev)
    clock = st.clock
    if clock == "auto":
        clock = "virtual" if timer_name == "thread_cpu" and not meter.available else "wall"
    if clock == "virtual" and meter.available:
        notes.append("virtual clock: the energy meter is not used (energy happens in wall time)")
        meter = None
    rng = measured_range(prof)
    seqs = st.max_num_seqs or rng["max_decode_batch"]
    budget = st.max_num_batched_tokens or rng["max_prompt"]
    cap = max(2, rng["max_context"] // 2)
    rate = st.rate_per_s or default_rate(prof.latency, st.prompt_tokens, st.output_tokens, seqs)
    specs = generate_requests(st.seed, rate, st.minutes * 60, st.prompt_tokens, st.output_tokens, st.lengths,
                              max_prompt=min(4 * st.prompt_tokens, cap), max_output=min(4 * st.output_tokens, cap))
    specs = [replace(s, arrival_s=round(s.arrival_s * 1e7) / 1e7) for s in specs]  # the CSV's resolution
    _check_pool_fits(model, dev, seqs, max(s.prompt_tokens + s.output_tokens for s in specs))
    _warm_up(model, sync)
    drift0 = drift_probe(model, prof, timer, sync, int(prov.get("seed", 0)))
    bar = _bar(len(specs), progress)
    res = serve(model, specs, max_num_seqs=seqs, max_num_batched_tokens=budget, clock=clock, timer=timer,
                timer_name=timer_name, sync=sync, seed=st.seed, meter=meter, progress=bar.update)
    bar.close()
    drift1 = drift_probe(model, prof, timer, sync, int(prov.get("seed", 0)))
    ctx_probe = int(np.median([s.prompt_tokens + s.output_tokens / 2 for s in specs]))
    path = path_probe(model, max(1, seqs // 2), ctx_probe, timer, sync)
    report = build_report(prof, where, res, st, seqs, budget, rate, drift0, drift1, path, notes,
                          meter_reason=None if meter is None else meter.reason)
    report["wall_time_s"] = round(time.perf_counter() - t_start, 3)
    if steps_out is not None:
        from agentwatt.validate.serve import write_trace
        write_trace(res, steps_out, comment=f"agentwatt calibrate check serving loop: {prof.name} ({prof.provenance.get('preset')}) "
                                            f"on {report['device_name']}, {res.clock} clock, seed {st.seed}")
        report["step_trace_file"] = str(steps_out)
    if out is not None:
        from agentwatt.core.io import atomic_write_json
        atomic_write_json(out, _clean(report))
    return _clean(report)


def _check_pool_fits(model, dev: torch.device, seqs: int, longest: int) -> None:
    """The loop's KV pool (max_num_seqs + 1 slots of the longest request) must fit in half the free memory."""
    from agentwatt.calibrate.batchstep import KVPool
    from agentwatt.calibrate.run import total_ram_bytes
    need = KVPool.nbytes(model, seqs + 1, longest)
    free = torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else total_ram_bytes()
    if need > 0.5 * free:
        raise InputError(f"--max-num-seqs {seqs}: the loop's KV pool needs {need / 2**30:.1f} GiB for {seqs + 1} slots of "
                         f"{longest} tokens, more than half of the {free / 2**30:.1f} GiB free on {dev}: expected a "
                         f"smaller --max-num-seqs or shorter --prompt-tokens/--output-tokens")


def _warm_up(model, sync) -> None:
    from agentwatt.calibrate.batchstep import KVPool, Segment, model_step
    from agentwatt.calibrate.models import random_token_ids
    g = torch.Generator().manual_seed(1)
    pool = KVPool.allocate(model, 2, 80)
    ids = random_token_ids(model, 1, 64, g)[0]
    for _ in range(2):
        model_step(model, pool, [Segment(ids[:1], 64, 0, decode=True), Segment(ids, 0, 1)])
    sync()


def build_report(prof: Profile, where: str, res: ServeResult, st: CheckSettings, seqs: int, budget: int, rate: float,
                 drift0: dict, drift1: dict, path: dict, notes: list[str], meter_reason: str | None) -> dict[str, Any]:
    measured = {"ttft_s": res.first_token_s - res.arrival_s, "e2e_s": res.finish_s - res.arrival_s}
    engine = dict(seed=st.seed, max_num_seqs=seqs, max_num_batched_tokens=budget,
                  kv_capacity_tokens=res.kv_capacity_tokens)
    sim = simulate_replay(prof, res.specs, **engine)
    steps = res.steps
    loop_overhead = float(np.mean([s.total_s - s.forward_s for s in steps]))
    padding_s = prof.latency.decode_ctx_s * float(np.mean([s.padding_tokens for s in steps]))
    extra = loop_overhead + padding_s + path["extra_per_step_s"]
    adjusted_lat = replace(prof.latency, overhead_s=max(0.0, prof.latency.overhead_s + extra))
    sim_adj = simulate_replay(replace(prof, latency=adjusted_lat), res.specs, **engine)
    speed = _speed_ratio(drift0, drift1)
    speed_lat = None
    if speed is not None:   # the machine's speed now (drift probe) times the profile, plus the loop's costs
        c = [speed * v for v in prof.latency.coefficients]
        speed_lat = LatencyModel(overhead_s=max(0.0, c[0] + extra), prefill_token_s=c[1], prefill_attn_s=c[2],
                                 decode_seq_s=c[3], decode_ctx_s=c[4])
    busy = float(sum(s.end_s - s.start_s for s in steps))
    span = float(np.nanmax(res.finish_s))
    lat = compare_latency(measured, sim)
    lat_adj = compare_latency(measured, sim_adj)
    lat_speed = (compare_latency(measured, simulate_replay(replace(prof, latency=speed_lat), res.specs, **engine))
                 if speed_lat is not None else None)
    energy, power = _energy_and_power(prof, res, sim, meter_reason)
    trace = step_trace_check(prof, res, measured, sim, engine)
    report: dict[str, Any] = {
        "profile": where, "profile_name": prof.name, "preset": prof.provenance.get("preset"),
        "device": str(prof.provenance.get("device")), "device_name": prof.hardware.device_name,
        "threads": torch.get_num_threads(), "step_timer": res.timer, "clock": res.clock,
        "settings": {"minutes": st.minutes, "rate_per_s": rate, "seed": st.seed, "lengths": st.lengths,
                     "prompt_tokens_mean": st.prompt_tokens, "output_tokens_mean": st.output_tokens,
                     "requests": len(res.specs), "max_num_seqs": seqs, "max_num_batched_tokens": budget,
                     "kv_capacity_tokens": res.kv_capacity_tokens, "prefix_caching": False},
        "loop": {"steps": len(steps), "busy_s": busy, "span_s": span, "utilization": busy / span if span else None,
                 "mean_decode_batch": float(np.mean([s.decode_seqs for s in steps if s.decode_seqs] or [0])),
                 "loop_overhead_s_per_step": loop_overhead,
                 "padding_s_per_step": padding_s,
                 "per_sequence_attention_steps": sum(1 for s in steps if not s.batched_decode),
                 "loop_overhead_fraction": loop_overhead / float(np.mean([s.total_s for s in steps])),
                 "serve_wall_s": res.wall_s, "steps_vs_profile": step_comparison(steps, prof.latency),
                 "step_path": path, "drift_before": drift0, "drift_after": drift1, "notes": res.notes},
        "latency": lat, "latency_loop_adjusted": lat_adj,
        "loop_adjusted_profile": {"overhead_s": adjusted_lat.overhead_s, "added_s": extra,
                                  "note": "profile overhead + the loop's mean per-step time outside the model + mean "
                                          "padded-attention cost per step (decode_ctx_s x padding tokens) + the loop "
                                          "step path's extra over the sweep's decode (path probe), all from this run"},
        "latency_at_current_speed": lat_speed,
        "current_speed": {"ratio": speed, "note": "geometric mean of the drift probes before and after the loop: the "
                                                  "profile's own sweep points now, over their calibrated times; this "
                                                  "comparison scales the profile by it and adds the loop costs, so "
                                                  "what remains is the step model's own error at this workload"},
        "energy": energy, "power": power,
        "step_trace_profile": trace,
    }
    report["goals"] = goals(lat, lat_adj, energy, power, trace)
    if lat_speed is not None:
        report["diagnostic_errors_at_current_speed"] = {f"{k}.{q}": lat_speed[k]["error"][q]
                                                        for k in ("ttft_s", "e2e_s") for q in ("p50", "p99")}
    report["notes"] = notes + explain(report)
    return report


def step_trace_check(prof: Profile, res: ServeResult, measured: dict[str, np.ndarray], sim: dict[str, Any],
                     engine: dict[str, Any], fit_part: float = TRACE_FIT_PART) -> dict[str, Any]:
    """Fit a profile to the loop's own step trace before the split (the arrival of the first
    ``fit_part`` of the requests) and check it, beside the micro-benchmark profile, on the rest: the
    steps that start after the split (step-time error) and the requests that arrive after it (the
    replay's latency and energy errors)."""
    from agentwatt.calibrate.fit_trace import MIN_ROWS, fit_trace
    from agentwatt.core.steptrace import StepTrace
    from agentwatt.validate.serve import trace_rows
    n = len(res.specs)
    k = int(fit_part * n)
    if not 0 < k < n:
        return {"available": False, "reason": f"{n} requests: too few to fit on a first part and check on the rest"}
    split = float(res.specs[k].arrival_s)
    rows = trace_rows(res)
    fit_rows = [r for r in rows if r[0] < split]
    rest = [r for r in rows if r[0] >= split]
    if len(fit_rows) < MIN_ROWS or not rest:
        return {"available": False, "reason": f"{len(fit_rows)} loop steps before the split at {split:.3f} s and "
                                              f"{len(rest)} after: expected at least {MIN_ROWS} and 1"}
    where = f"calibrate check serving log, steps before {split:.3f} s"
    try:
        tprof = fit_trace(StepTrace(path=where, rows=tuple(fit_rows), has_energy_column=True),
                          name=f"{prof.name}-steptrace", model=prof.model, hardware=prof.hardware,
                          model_from=f"the checked profile {prof.name}")
    except InputError as e:
        return {"available": False, "reason": str(e)}
    sim_t = simulate_replay(tprof, res.specs, **engine)
    late = np.array([s.arrival_s >= split for s in res.specs])

    def part(d: dict[str, Any]) -> dict[str, np.ndarray]:
        return {key: np.asarray(d[key])[late] for key in ("ttft_s", "e2e_s")}

    def steps_err(lat: LatencyModel) -> dict[str, float]:
        a = np.array([[r[1], lat.step_s(*r[2:6])] for r in rest])
        e = (a[:, 1] - a[:, 0]) / a[:, 0]
        return {"mape": float(np.mean(np.abs(e))), "median_error": float(np.median(e)),
                "total_error": float(a[:, 1].sum() / a[:, 0].sum() - 1.0)}

    energy: dict[str, Any] = {"available": False, "reason": res.energy_reason or "no energy meter"}
    if res.energy_j is not None:
        m = float(np.mean(res.energy_j[late]))
        energy = {"available": True, "measured_j_per_request": m}
        for label, s in (("microbenchmark", sim), ("step_trace", sim_t)):
            energy[label] = (None if s["energy_j"] is None else pct_error(float(np.mean(s["energy_j"][late])), m))
    lat = tprof.latency
    return {
        "available": True, "split_s": split, "fit_requests": k, "check_requests": int(late.sum()),
        "fit_steps": len(fit_rows), "check_steps": len(rest),
        "form": tprof.provenance["form"], "forms": tprof.provenance["forms"],
        "latency_model": {f: getattr(lat, f) for f in ("overhead_s", "prefill_token_s", "prefill_attn_s",
                                                       "decode_seq_s", "decode_ctx_s", "weight_s", "token_s",
                                                       "overlap_p")},
        "fit": asdict(lat.fit) if lat.fit is not None else None,
        "power": ({"available": True, "idle_w": tprof.power.idle_w, "compute_w": tprof.power.compute_w,
                   "memory_w": tprof.power.memory_w} if tprof.power.available
                  else {"available": False, "reason": tprof.power.reason}),
        "steps_after_split": {"microbenchmark": steps_err(prof.latency), "step_trace": steps_err(lat)},
        "latency_after_split": {"microbenchmark": compare_latency(part(measured), part(sim)),
                                "step_trace": compare_latency(part(measured), part(sim_t))},
        "energy_after_split": energy,
        "note": "step-trace profile: fit-trace (calibrate/fit_trace.py) on the loop's steps before the split "
                "(duration = the loop clock a step occupies, bookkeeping included); both profiles checked on "
                "the steps and requests after it, the replay covering every request",
    }


def _energy_and_power(prof: Profile, res: ServeResult, sim: dict, meter_reason: str | None) -> tuple[dict, dict]:
    if res.energy_j is None:
        why = res.energy_reason or meter_reason or "no energy meter"
        return {"available": False, "reason": why}, {"available": False, "reason": why}
    if sim["energy_j"] is None:
        why = f"the profile has no power model ({prof.power.reason})"
        return {"available": False, "reason": why}, {"available": False, "reason": why}
    m, s = float(np.mean(res.energy_j)), float(np.mean(sim["energy_j"]))
    energy = {"available": True, "measured_j_per_request": m, "simulated_j_per_request": s, "error": pct_error(s, m),
              "meter": res.power.source}
    from agentwatt.validate.powercompare import compare
    try:
        power = {"available": True, **compare(res.power.mid_s, res.power.watts, *sim["power"])}
    except InputError as e:
        power = {"available": False, "reason": str(e)}
    return energy, power


def _speed_ratio(drift0: dict, drift1: dict) -> float | None:
    r = [d["ratio"] for d in (drift0, drift1) if d.get("ratio")]
    return float(np.exp(np.mean(np.log(r)))) if r else None


def goals(lat: dict, lat_adj: dict, energy: dict, power: dict, trace: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    blocks = [("profile", lat), ("loop_adjusted", lat_adj)]
    if trace and trace.get("available"):   # the step-trace profile on the requests after the split
        blocks.append(("step_trace", trace["latency_after_split"]["step_trace"]))
    for label, block in blocks:
        for k in ("ttft_s", "e2e_s"):
            for q in ("p50", "p99"):
                err, goal = block[k]["error"][q], GOALS[f"latency_{q}"]
                out[f"{label}.{k}.{q}"] = {"error": err, "goal": goal, "met": bool(abs(err) <= goal)}
    if energy.get("available"):
        out["energy_per_request"] = {"error": energy["error"], "goal": GOALS["energy_per_request"],
                                     "met": bool(abs(energy["error"]) <= GOALS["energy_per_request"])}
    if power.get("available"):
        out["acf_r2"] = {"value": power["acf_r2"], "goal": GOALS["acf_r2"], "met": bool(power["acf_r2"] >= GOALS["acf_r2"])}
    return out


def explain(r: dict) -> list[str]:
    """Sentences that say where a miss comes from, from the probes of the same run."""
    loop = r["loop"]
    out = []
    allsteps = loop["steps_vs_profile"]["all"]
    out.append(f"loop steps took {allsteps['median_measured_over_profile']:.2f}x the profile's prediction for the "
               f"same features (median over {allsteps['steps']} steps; "
               f"{allsteps['measured_s']:.1f} s measured vs {allsteps['profile_s']:.1f} s predicted in total)")
    d0, d1 = loop["drift_before"]["ratio"], loop["drift_after"]["ratio"]
    if d0 is not None and d1 is not None:
        out.append(f"machine speed vs calibration: the profile's own sweep points now take {d0:.2f}x (before the loop) "
                   f"and {d1:.2f}x (after) their calibrated times; noise or drift of this size moves every "
                   f"latency by about as much")
    out.append(f"loop overhead outside the model: {loop['loop_overhead_s_per_step'] * 1e3:.3f} ms per step "
               f"({100 * loop['loop_overhead_fraction']:.1f} % of a step)")
    out.append(f"padded decode attention: {loop['padding_s_per_step'] * 1e3:.3f} ms per step of KV reads beyond "
               f"sum(ctx) at the profile's decode_ctx_s")
    pp = loop["step_path"]
    out.append(f"the loop's step code vs the sweep's batched decode on identical work (batch {pp['batch']}, context "
               f"{pp['context']}): {pp['extra_per_step_s'] * 1e3:+.3f} ms per step")
    return out


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    return x


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, enabled: bool):
    import sys
    if not enabled or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, desc="check", unit="req", leave=False)


# ------------------------------------------------------------------------------ terminal summary

def summarize_check(r: dict) -> str:
    s, loop = r["settings"], r["loop"]
    lines = [f"check {r['profile_name']} on {r['device_name']} ({r['device']}, {r['threads']} thread(s), "
             f"{r['clock']} clock, steps timed by {r['step_timer']}): {s['requests']} requests at "
             f"{s['rate_per_s']:.2f}/s over {s['minutes']:g} min, {loop['steps']} steps, utilization "
             f"{100 * (loop['utilization'] or 0):.0f} %, mean decode batch {loop['mean_decode_batch']:.1f}"]
    for label, key in (("profile", "latency"), ("profile + loop costs", "latency_loop_adjusted")):
        parts = []
        for k, name in (("ttft_s", "TTFT"), ("e2e_s", "e2e")):
            e = r[key][k]["error"]
            parts.append(f"{name} p50 {100 * e['p50']:+.1f} %, p99 {100 * e['p99']:+.1f} %")
        lines.append(f"latency error ({label}): " + "; ".join(parts))
    if r.get("latency_at_current_speed"):
        e = r["latency_at_current_speed"]
        lines.append(f"diagnostic (profile x machine speed now {r['current_speed']['ratio']:.2f} + loop costs): "
                     + "; ".join(f"{name} p50 {100 * e[k]['error']['p50']:+.1f} %, p99 {100 * e[k]['error']['p99']:+.1f} %"
                                 for k, name in (("ttft_s", "TTFT"), ("e2e_s", "e2e"))))
    m = r["latency"]
    lines.append(f"measured: TTFT p50 {m['ttft_s']['measured']['p50'] * 1e3:.1f} ms, p99 "
                 f"{m['ttft_s']['measured']['p99'] * 1e3:.1f} ms; e2e p50 {m['e2e_s']['measured']['p50']:.3f} s, "
                 f"p99 {m['e2e_s']['measured']['p99']:.3f} s")
    lines += _trace_lines(r.get("step_trace_profile"))
    en = r["energy"]
    lines.append(f"energy per request: error {100 * en['error']:+.1f} % ({en['measured_j_per_request']:.3f} J measured)"
                 if en.get("available") else f"energy per request: unavailable: {en['reason']}")
    pw = r["power"]
    if pw.get("available"):
        lines.append(f"power series: ΔE {pw['energy_error_pct']:+.1f} %, ACF R² {pw['acf_r2']:.3f}, "
                     f"KS {pw['ks_distance']:.3f}, P95 {pw['p95_error_pct']:+.1f} %, P99 {pw['p99_error_pct']:+.1f} %")
    met = [k for k, g in r["goals"].items() if g["met"]]
    lines.append(f"goals met: {len(met)} of {len(r['goals'])} "
                 f"(p50 ≤ {100 * GOALS['latency_p50']:.0f} %, p99 ≤ {100 * GOALS['latency_p99']:.0f} %, "
                 f"energy ≤ {100 * GOALS['energy_per_request']:.0f} %, ACF R² ≥ {GOALS['acf_r2']})")
    lines += [f"note: {n}" for n in r["notes"]]
    return "\n".join(lines)


def _trace_lines(t: dict | None) -> list[str]:
    """The micro-benchmark profile and the step-trace profile side by side, on the part after the split."""
    if not t:
        return []
    if not t.get("available"):
        return [f"step-trace profile: unavailable: {t['reason']}"]
    f = t["fit"] or {}
    hold = f.get("holdout_mape")
    out = [f"step-trace profile ({t['form']} form, fitted to the loop's first {t['fit_steps']} steps, before "
           f"{t['split_s']:.2f} s{'' if hold is None else f'; held-out step MAPE {100 * hold:.1f} %'}), checked beside "
           f"the micro-benchmark profile on the last {t['check_steps']} steps and the {t['check_requests']} requests "
           f"arriving after the split:",
           f"  {'':<24}{'micro-benchmark':>18}{'step trace':>14}"]
    st = t["steps_after_split"]
    out.append(f"  {'step time MAPE':<24}{100 * st['microbenchmark']['mape']:>16.1f} %{100 * st['step_trace']['mape']:>12.1f} %")
    out.append(f"  {'step time total':<24}{100 * st['microbenchmark']['total_error']:>+16.1f} %"
               f"{100 * st['step_trace']['total_error']:>+12.1f} %")
    la = t["latency_after_split"]
    for k, name in (("ttft_s", "TTFT"), ("e2e_s", "e2e")):
        for q in ("p50", "p99"):
            a, b = la["microbenchmark"][k]["error"][q], la["step_trace"][k]["error"][q]
            out.append(f"  {name + ' ' + q + ' error':<24}{100 * a:>+16.1f} %{100 * b:>+12.1f} %")
    en = t["energy_after_split"]
    if en.get("available"):
        def pc(v):
            return "n/a" if v is None else f"{100 * v:+.1f} %"
        out.append(f"  {'energy/request error':<24}{pc(en['microbenchmark']):>18}{pc(en['step_trace']):>14}")
    return out
