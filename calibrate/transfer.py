"""Roofline transfer: scale a profile to another GPU, model shape and tensor-parallel degree.

Each latency term of the profile (``core/profile.py``) is read as roofline work divided by
an *efficiency* fitted on the source (efficiency = roofline time / fitted time), and rebuilt for the
target with the same efficiency. Per device, with ``tp`` devices, ``L`` layers, hidden size ``h``,
``n_h`` query heads of size ``d``, ``e`` bytes per weight/KV element, ``N_L`` parameters in the
decoder layers and ``N_H = vocab·h`` in the LM head:

    compute-bound (peak FLOP/s ``F``, efficiency η):
      prefill_token_s = 2·N_L/tp / (F·η_pt) + comm      (LM head only at the last prompt token: not per token)
      prefill_attn_s  = 2·L·n_h·d/tp / (F·η_pa)          (QKᵀ and AV per unit of A = chunk × context, causal half)
      decode_seq_s    = 2·(N_L+N_H)/tp / (F·η_ds) + comm
    memory-bound (bandwidth ``B``, one efficiency η_bw for all HBM reads):
      decode_ctx_s    = kv_bytes_per_token/min(tp, n_kv_heads) / (B·η_bw)
      overhead_s      = weight_bytes/tp / (B·η_bw) + floor·(L_target / L_source)
    tensor-parallel communication per token (both prefill and decode tokens):
      comm = 2·L·h·e · 2(tp−1)/tp / link        two all-reduces per layer (after attention and after
                                                the MLP), ring traffic per GPU, ``link`` = per-direction
                                                interconnect bandwidth (half of NVIDIA's bidirectional
                                                NVLink figure); 0 when tp = 1; efficiency 1 (a lower
                                                bound: per-all-reduce latency is not modelled)

η_bw comes from ``decode_ctx_s`` (the one purely memory-bound term); the weight read in the overhead is
assumed to run at the same efficiency, and what remains of the source overhead is a ``floor`` (kernel
launches, host work, synchronisation) that no roofline explains; it is kept, scaled by the layer count.
Source compute efficiencies are computed after removing the source's own communication roofline.

Power: every watt figure of the source as a fraction of its TDP, applied to the target's TDP, except
the idle levels when the target is another GPU whose catalog row (``core/gpus.py``) has a measured
idle figure: then that figure is the target's idle (a single-level phase model) or its parked level
(activity model: the catalog's SplitwiseSim idle is the no-work level, as ``calibrate/measured.py``
reads it), and the idle with a model loaded is that plus the source's own loaded-minus-parked watts (a
CUDA context costs tens of watts whatever the TDP: Vadari et al., "The Model Parking Tax").

The result is ``source: transfer/estimate``; its provenance carries an error band measured by
``transfer_checks`` on published data (see there).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import Any

from agentwatt.core.gpus import GPUS, GpuSpec, cpu_peaks_from, cpu_spec, get_gpu, gpu_for_device
from agentwatt.core.profile import FitStats, Hardware, LatencyModel, ModelShape, PowerModel, Profile
from agentwatt.core.errors import InputError

LOCAL_CPU = "local-cpu"
MEM_FRACTION_FOR_WEIGHTS = 0.9  # weights must leave room for a KV cache (vLLM's gpu_memory_utilization)


# ------------------------------------------------------------------------------ model shapes

def known_models() -> list[str]:
    from agentwatt.calibrate.presets import PRESETS
    return sorted({*PRESETS, "llama-3.1-8b", "llama-3.1-70b"})


def model_shape_named(name: str, dtype_bytes: int) -> ModelShape:
    """Shape of a known model (presets of ``calibrate/models.py`` and the published Llama-3.1 configs)."""
    from agentwatt.calibrate import splitwise_reference as published
    from agentwatt.calibrate.presets import PRESETS, expected_n_params
    fixed = {"llama-3.1-8b": published.LLAMA_31_8B, "llama-3.1-70b": published.LLAMA_31_70B}
    if name in fixed:
        return replace(fixed[name], dtype_bytes=dtype_bytes)
    if name in PRESETS:
        c = PRESETS[name]
        return ModelShape(name=c.name, n_layers=c.n_layers, hidden_size=c.hidden_size, n_heads=c.n_heads,
                          n_kv_heads=c.n_kv_heads, head_dim=c.head_dim, intermediate_size=c.intermediate_size,
                          vocab_size=c.vocab_size, n_params=expected_n_params(c), dtype_bytes=dtype_bytes)
    raise InputError(f"--model {name!r}: unknown model: expected one of {', '.join(known_models())}")


def head_params(m: ModelShape) -> int:
    return m.vocab_size * m.hidden_size


def layer_params(m: ModelShape) -> int:
    """Parameters in the decoder layers (all but the embedding and the LM head; final norm included).

    Derived from the shape, so it is exact for Llama-shaped models whichever way ``n_params`` counts
    a tied embedding."""
    h = m.hidden_size
    per_layer = 2 * h * m.n_heads * m.head_dim + 2 * h * m.n_kv_heads * m.head_dim + 3 * h * m.intermediate_size + 2 * h
    return m.n_layers * per_layer + h


# ------------------------------------------------------------------------------ roofline work

@dataclass(frozen=True, kw_only=True)
class Rates:
    """What the roofline needs of one device."""

    name: str
    flops: float          # peak FLOP/s at the dtype used
    mem_bps: float        # memory bandwidth, bytes/s
    link_bps: float | None = None  # per-direction GPU-to-GPU bandwidth, bytes/s


def rates_of(spec: GpuSpec) -> Rates:
    if spec.flops is None or spec.mem_bytes_per_s is None:
        raise InputError(f"GPU catalog row {spec.key}: peak FLOP/s or bandwidth unknown: cannot transfer")
    return Rates(name=spec.name, flops=spec.flops, mem_bps=spec.mem_bytes_per_s, link_bps=spec.link_bytes_per_s)


@dataclass(frozen=True, kw_only=True)
class Work:
    """Roofline work of each latency term, per device (module docstring)."""

    n_layers: int
    tp: int
    weight_bytes: float
    kv_bytes_per_token: float
    prefill_flops_per_token: float
    attn_flops_per_unit: float
    decode_flops_per_seq: float
    allreduce_bytes_per_token: float


def work_of(m: ModelShape, tp: int) -> Work:
    ring = 2.0 * (tp - 1) / tp
    kv_split = min(tp, m.n_kv_heads)   # beyond n_kv_heads devices, KV heads are replicated, not split further
    return Work(n_layers=m.n_layers, tp=tp, weight_bytes=m.weight_bytes / tp,
                kv_bytes_per_token=m.kv_bytes_per_token / kv_split,
                prefill_flops_per_token=2.0 * layer_params(m) / tp,
                attn_flops_per_unit=2.0 * m.n_layers * m.n_heads * m.head_dim / tp,
                decode_flops_per_seq=2.0 * (layer_params(m) + head_params(m)) / tp,
                allreduce_bytes_per_token=2.0 * m.n_layers * m.hidden_size * m.dtype_bytes * ring)


def comm_s_per_token(w: Work, r: Rates) -> float:
    """Tensor-parallel all-reduce time per token: bytes / per-direction link bandwidth (0 at tp = 1)."""
    if w.tp == 1:
        return 0.0
    if not r.link_bps:
        raise InputError(f"{r.name}: no GPU-to-GPU interconnect in the catalog: expected --tp 1")
    return w.allreduce_bytes_per_token / r.link_bps


@dataclass(frozen=True, kw_only=True)
class Efficiency:
    """Fitted efficiencies of a source profile (roofline time / fitted time) and its overhead split."""

    prefill_token: float
    prefill_attn: float
    decode_seq: float
    bandwidth: float        # KV reads (and the weight read, assumed alike)
    weight_read: float      # = bandwidth unless the overhead is shorter than that weight read
    weight_read_s: float
    floor_s: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"prefill_token": self.prefill_token, "prefill_attn": self.prefill_attn,
                "decode_seq": self.decode_seq, "hbm_bandwidth": self.bandwidth, "weight_read": self.weight_read,
                "overhead_weight_read_s": self.weight_read_s, "overhead_floor_s": self.floor_s,
                "notes": list(self.notes)}


def _compute_eff(fitted_s: float, flops: float, r: Rates, comm_s: float) -> float | None:
    t = fitted_s - comm_s
    return (flops / r.flops) / t if t > 0 and flops > 0 else None


def efficiencies(lat: LatencyModel, w: Work, r: Rates) -> Efficiency:
    notes: list[str] = []
    comm = comm_s_per_token(w, r)
    eff = {"prefill_token": _compute_eff(lat.prefill_token_s, w.prefill_flops_per_token, r, comm),
           "prefill_attn": _compute_eff(lat.prefill_attn_s, w.attn_flops_per_unit, r, 0.0),
           "decode_seq": _compute_eff(lat.decode_seq_s, w.decode_flops_per_seq, r, comm)}
    known = [v for v in eff.values() if v is not None]
    if not known:
        raise InputError("source profile: prefill_token_s, prefill_attn_s and decode_seq_s are all 0 (or below the "
                         "communication roofline): expected at least one compute-bound term to transfer")
    for k, v in eff.items():
        if v is None:
            eff[k] = statistics.median(known)
            notes.append(f"source {k}_s is 0: its efficiency is borrowed (median of the other compute terms)")
    weight_roof = w.weight_bytes / r.mem_bps
    if lat.decode_ctx_s > 0:
        bw = (w.kv_bytes_per_token / r.mem_bps) / lat.decode_ctx_s
    elif lat.overhead_s > 0:
        bw = weight_roof / lat.overhead_s
        notes.append("source decode_ctx_s is 0: HBM efficiency taken from the overhead as all weight read")
    else:
        raise InputError("source profile: overhead_s and decode_ctx_s are both 0: expected a memory-bound term")
    wr_eff = bw
    if weight_roof / bw > lat.overhead_s:
        wr_eff = weight_roof / lat.overhead_s if lat.overhead_s > 0 else bw
        notes.append("source overhead is shorter than its weight read at the KV-read efficiency: the whole overhead "
                     "is counted as weight read (no floor)")
    weight_read_s = min(lat.overhead_s, weight_roof / wr_eff)
    return Efficiency(prefill_token=eff["prefill_token"], prefill_attn=eff["prefill_attn"], decode_seq=eff["decode_seq"],
                      bandwidth=bw, weight_read=wr_eff, weight_read_s=weight_read_s,
                      floor_s=max(0.0, lat.overhead_s - weight_read_s), notes=tuple(notes))


def transfer_latency(lat: LatencyModel, src_w: Work, src_r: Rates, dst_w: Work, dst_r: Rates,
                     fit: FitStats | None = None) -> tuple[LatencyModel, Efficiency, dict[str, float]]:
    """The target latency model, the source efficiencies, and the target's overhead breakdown."""
    e = efficiencies(lat, src_w, src_r)
    comm = comm_s_per_token(dst_w, dst_r)
    weight_read = dst_w.weight_bytes / (dst_r.mem_bps * e.weight_read)
    floor = e.floor_s * dst_w.n_layers / src_w.n_layers
    out = LatencyModel(
        overhead_s=weight_read + floor,
        prefill_token_s=dst_w.prefill_flops_per_token / (dst_r.flops * e.prefill_token) + comm,
        prefill_attn_s=dst_w.attn_flops_per_unit / (dst_r.flops * e.prefill_attn),
        decode_seq_s=dst_w.decode_flops_per_seq / (dst_r.flops * e.decode_seq) + comm,
        decode_ctx_s=dst_w.kv_bytes_per_token / (dst_r.mem_bps * e.bandwidth), fit=fit)
    return out, e, {"overhead_weight_read_s": weight_read, "overhead_floor_s": floor, "comm_s_per_token": comm}


def transfer_power(pm: PowerModel, src_tdp_w: float | None, dst_tdp_w: float | None,
                   dst_idle_w: float | None = None) -> PowerModel:
    """Source watts as fractions of its TDP, times the target's TDP; idle levels from ``dst_idle_w``
    (the target GPU's catalog idle) when given (module docstring)."""
    if not pm.available:
        return PowerModel(available=False, source="unavailable",
                          reason=f"the source profile has no power model ({pm.reason})")
    if src_tdp_w is None or dst_tdp_w is None:
        which = "source" if src_tdp_w is None else "target"
        return PowerModel(available=False, source="unavailable",
                          reason=f"{which} TDP unknown: cannot carry watts over as fractions of TDP")
    f = dst_tdp_w / src_tdp_w
    if pm.activity:   # activity model: every level carried over as a fraction of TDP
        idle, parked = pm.idle_w * f, None if pm.parked_w is None else pm.parked_w * f
        if dst_idle_w is not None:
            parked = dst_idle_w
            idle = dst_idle_w + (pm.idle_w - pm.parked_w if pm.parked_w is not None else 0.0)
        return PowerModel(available=True, source="transfer", idle_w=idle, compute_w=pm.compute_w * f,
                          memory_w=pm.memory_w * f, parked_w=parked, max_w=dst_tdp_w)
    idle = dst_idle_w if dst_idle_w is not None else pm.idle_w * f
    return PowerModel(available=True, source="transfer", idle_w=idle, prefill_w=pm.prefill_w * f,
                      decode_base_w=pm.decode_base_w * f, decode_log2_batch_w=pm.decode_log2_batch_w * f,
                      max_w=dst_tdp_w)


# ------------------------------------------------------------------------------ source and target

def source_spec(profile: Profile, where: str) -> GpuSpec:
    """The catalog row of the device a profile was made on (the local-CPU row for a CPU profile)."""
    hw = profile.hardware
    if hw.kind == "cpu":
        peaks = cpu_peaks_from(profile.provenance, where)
        if peaks is None:
            peaks = _measure_peaks_here(profile, where)
        return cpu_spec(hw.device_name, hw.mem_gib_per_device, peaks)
    spec = gpu_for_device(hw.device_name)
    if spec is None:
        raise InputError(f"{where}: hardware.device_name = {hw.device_name!r}: not in the GPU catalog: expected one "
                         f"of {', '.join(g.name for g in GPUS.values())}")
    return spec


def _measure_peaks_here(profile: Profile, where: str):
    """Older CPU profiles lack ``provenance.cpu_peaks``: measure them now, if this is the same CPU."""
    from agentwatt.calibrate.run import cpu_model_name
    if cpu_model_name() != profile.hardware.device_name:
        raise InputError(f"{where}: provenance.cpu_peaks missing and this machine is not the profile's CPU "
                         f"({profile.hardware.device_name!r}): expected a profile from this version of agentwatt "
                         f"calibrate (recalibrate on that machine)")
    import torch
    from agentwatt.calibrate.hostpeaks import measure_cpu_peaks
    before = torch.get_num_threads()
    torch.set_num_threads(int(profile.provenance.get("threads") or 1))
    try:
        return measure_cpu_peaks()
    finally:
        torch.set_num_threads(before)


def _check_fits(m: ModelShape, spec: GpuSpec, tp: int) -> None:
    if tp < 1:
        raise InputError(f"--tp {tp}: expected an integer >= 1")
    if m.n_heads % tp or (m.n_kv_heads % tp and tp % m.n_kv_heads):
        raise InputError(f"--tp {tp}: expected a divisor of {m.name}'s {m.n_heads} attention heads "
                         f"(and of its {m.n_kv_heads} KV heads, or a multiple of them)")
    if spec.mem_gib is not None:
        need = m.weight_bytes / tp / 2**30
        if need > MEM_FRACTION_FOR_WEIGHTS * spec.mem_gib:
            raise InputError(f"--model {m.name} --tp {tp} on {spec.key}: weights need {need:.1f} GiB per device, more "
                             f"than {MEM_FRACTION_FOR_WEIGHTS:.0%} of its {spec.mem_gib:g} GiB: expected a larger --tp")


def transfer_profile(profile: Profile, to: str, model: str | None = None, tp: int = 1,
                     where: str = "profile") -> Profile:
    """Scale ``profile`` to GPU ``to`` (a catalog key, or ``local-cpu`` for a CPU profile's own CPU),
    model ``model`` (default: the source's) and ``tp`` devices per replica."""
    src = source_spec(profile, where)
    if to.strip().lower() == LOCAL_CPU:
        if src.kind != "cpu":
            raise InputError(f"--to {LOCAL_CPU}: only for a CPU profile (this one ran on {profile.hardware.device_name})")
        dst = src
    else:
        dst = get_gpu(to)
    dtype_bytes = profile.model.dtype_bytes if dst.kind == "cpu" else 2  # GPUs serve in BF16
    if model is None:
        m_dst = (model_shape_named(profile.model.name, dtype_bytes) if profile.model.name in known_models()
                 else replace(profile.model, dtype_bytes=dtype_bytes))
    else:
        m_dst = model_shape_named(model, dtype_bytes)
    _check_fits(m_dst, dst, tp)
    if dst.kind == "cpu" and tp != 1:
        raise InputError(f"--tp {tp} with --to {LOCAL_CPU}: expected --tp 1 (no interconnect between CPUs here)")
    src_w, dst_w = work_of(profile.model, profile.hardware.tp), work_of(m_dst, tp)
    band = error_band(profile, model_or_tp_changed=(m_dst.name != profile.model.name or tp != profile.hardware.tp),
                      device_changed=dst.name != profile.hardware.device_name)
    fit = FitStats(n_points=band["points"], mape=band["combined_mape"], max_ape=band["max_ape"],
                   note=("transfer/estimate: not fitted; mape = error band (source holdout MAPE and the measured "
                         "transfer disagreement, in quadrature; provenance.error_band)"))
    lat, eff, parts = transfer_latency(profile.latency, src_w, rates_of(src), dst_w, rates_of(dst), fit=fit)
    src_tdp = profile.hardware.tdp_w_per_device or src.tdp_w
    # the catalog's idle for another GPU; a source measured on this very GPU keeps its own idle
    power = transfer_power(profile.power, src_tdp, dst.tdp_w, dst.idle_w if dst.name != src.name else None)
    name = f"{m_dst.name}_{dst.key}" if tp == 1 else f"{m_dst.name}_{tp}x{dst.key}"
    hw = Hardware(device_name=dst.name, kind=dst.kind, tp=tp,
                  mem_gib_per_device=dst.mem_gib or profile.hardware.mem_gib_per_device, tdp_w_per_device=dst.tdp_w)
    notes = [f"estimate: roofline transfer of {profile.name} ({profile.source}) to {tp} x {dst.name}, {m_dst.name}; "
             "not measured",
             f"overhead floor {eff.floor_s * 1e3:.3f} ms (source) scaled by layers to {parts['overhead_floor_s'] * 1e3:.3f} ms: "
             "kernel launches and host work are assumed per layer [I]",
             "power: source watts as fractions of its TDP applied to the target TDP"
             + (f", idle levels from the GPU catalog ({dst.idle_w:g} W)" if dst.idle_w is not None and dst.name != src.name
                else "") + "; per-GPU power at other tp or batch mixes is not modelled beyond that"]
    if src.kind == "cpu":
        notes.append("CAVEAT: the source is a CPU profile: its efficiency factors are CPU ones (fp32, one core, "
                     "caches) measured against microbenchmark peaks, not GPU ones; use the result to test the "
                     "method, and the bundled GPU profiles for datacenter questions"
                     + ("; the error band does not cover CPU-to-GPU efficiency differences" if dst.kind == "gpu" else ""))
    notes += list(eff.notes)
    prov = {"tool": "agentwatt calibrate transfer", "transferred_from": {
                "name": profile.name, "source": profile.source, "device": profile.hardware.device_name,
                "tp": profile.hardware.tp, "model": profile.model.name,
                "latency": {k: getattr(profile.latency, k) for k in (
                    "overhead_s", "prefill_token_s", "prefill_attn_s", "decode_seq_s", "decode_ctx_s")}},
            "source_device": src.row(), "target_device": dst.row(), "tp": tp, "model": m_dst.name,
            "efficiency": eff.to_dict(), "overhead_breakdown_s": parts,
            "formulas": FORMULAS, "error_band": band, "notes": notes}
    return Profile(name=name, source="transfer/estimate", model=m_dst, hardware=hw, latency=lat, power=power,
                   provenance=prov, measurements=[])


FORMULAS = {
    "prefill_token_s": "2*N_layers_params/tp / (peak_flops * eff_pt) + comm",
    "prefill_attn_s": "2*layers*n_heads*head_dim/tp / (peak_flops * eff_pa)",
    "decode_seq_s": "2*(N_layers_params + vocab*hidden)/tp / (peak_flops * eff_ds) + comm",
    "decode_ctx_s": "kv_bytes_per_token/min(tp, n_kv_heads) / (hbm_bw * eff_bw)",
    "overhead_s": "weight_bytes/tp / (hbm_bw * eff_bw) + floor_source * layers_target/layers_source",
    "comm": "2*layers*hidden*dtype_bytes * 2*(tp-1)/tp / (interconnect_bidirectional/2); 0 at tp=1",
    "efficiency": "roofline time of the term on the source / fitted time of the term (comm removed)",
    "power": ("W_target = W_source * TDP_target / TDP_source (prefill, decode base and slope; compute, memory); "
              "idle = the target's catalog idle when it has one (activity model: parked = catalog idle, "
              "idle = catalog idle + source idle - source parked), else scaled alike; max = TDP_target"),
}


# ------------------------------------------------------------------------------ error band

# Splitwise measured step times, Llama-2-70B on DGX-H100 TP8, prompt 512 / 128 output tokens
# (docs/power.md §4.3 [P], splitwise-sim data/perf_model.csv):
SPLITWISE_H100_TP8_DECODE_MS = {1: 29.7, 8: 32.4, 16: 34.2, 32: 38.9, 64: 50.0}
SPLITWISE_H100_TP8_PREFILL_MS = {512: 57.0, 2048: 137.0, 8192: 848.0}


def _points(decode_ms: dict[int, float], prefill_ms: dict[int, float], ctx: int) -> list[tuple[str, tuple, float]]:
    """(label, (P, A, D, C), seconds) for decode batches at context ``ctx`` and batch-1 prefills."""
    pts = [(f"decode b{b}", (0, 0, b, b * ctx), ms * 1e-3) for b, ms in decode_ms.items()]
    pts += [(f"prefill {s}", (s, s * s, 0, 0), ms * 1e-3) for s, ms in prefill_ms.items()]
    return pts


def _score(lat: LatencyModel, pts: list[tuple[str, tuple, float]]) -> dict[str, Any]:
    rows = []
    for label, feats, t in pts:
        pred = lat.step_s(*feats)
        rows.append({"point": label, "reference_ms": round(t * 1e3, 3), "transfer_ms": round(pred * 1e3, 3),
                     "error": (pred - t) / t})
    apes = [abs(r["error"]) for r in rows]
    return {"mape": sum(apes) / len(apes), "max_ape": max(apes), "points": rows}


def transfer_checks() -> list[dict[str, Any]]:
    """Transfers whose answer is known from published data (pure arithmetic, milliseconds to run).

    1. model + TP: the bundled 8B/A100-40GB profile -> llama-3.1-70b, TP8, A100-40GB, against the bundled
       70B profile (least squares on Splitwise's measured A100 TP8 step times) at Splitwise's points.
    2. GPU: the bundled 70B/8xA100-40GB profile -> H100, TP8, against Splitwise's measured H100 TP8 times.
    """
    from agentwatt.calibrate import splitwise_reference as published
    p8, p70 = published.llama8b_a100_40gb(), published.llama70b_8xa100_40gb()
    a100 = rates_of(GPUS["a100-40gb"])
    lat_70, _, _ = transfer_latency(p8.latency, work_of(p8.model, 1), a100, work_of(p70.model, 8), a100)
    ref_pts = [(lab, f, p70.latency.step_s(*f)) for lab, f, _ in _points(
        published.SPLITWISE_TP8_DECODE_MS, published.SPLITWISE_TP8_PREFILL_MS, published.SPLITWISE_DECODE_CTX)]
    c1 = {"name": "llama-3.1-8b A100-40GB -> llama-3.1-70b 8xA100-40GB (model and TP)",
          "reference": "bundled llama-3.1-70b_8xa100-40gb (fitted to Splitwise A100 TP8 measurements)",
          **_score(lat_70, ref_pts)}
    lat_h100, _, _ = transfer_latency(p70.latency, work_of(p70.model, 8), a100, work_of(p70.model, 8),
                                      rates_of(GPUS["h100"]))
    c2 = {"name": "llama-3.1-70b 8xA100-40GB -> 8xH100 (GPU)",
          "reference": "Splitwise measured Llama-2-70B DGX-H100 TP8 step times (docs/power.md §4.3 [P])",
          **_score(lat_h100, _points(SPLITWISE_H100_TP8_DECODE_MS, SPLITWISE_H100_TP8_PREFILL_MS,
                                     published.SPLITWISE_DECODE_CTX))}
    return [c1, c2]


def error_band(profile: Profile, *, model_or_tp_changed: bool = True, device_changed: bool = True) -> dict[str, Any]:
    """± band for a transfer of ``profile``: its own holdout MAPE (fit MAPE if none) combined in quadrature
    with the MAPE of the ``transfer_checks`` that exercise the same kind of change (check 1 when the model
    or tp changes, check 2 when the device changes; the larger when both); max = their max APE plus the
    source's."""
    checks = transfer_checks()
    relevant = [c for c, on in zip(checks, (model_or_tp_changed, device_changed)) if on]
    fit = profile.latency.fit
    src_mape = None if fit is None else (fit.holdout_mape if fit.holdout_mape is not None else fit.mape)
    src_max = None if fit is None else (fit.holdout_max_ape if fit.holdout_max_ape is not None else fit.max_ape)
    t_mape = max((c["mape"] for c in relevant), default=0.0)
    t_max = max((c["max_ape"] for c in relevant), default=0.0)
    return {"combined_mape": math.hypot(src_mape or 0.0, t_mape), "max_ape": t_max + (src_max or 0.0),
            "source_mape": src_mape, "transfer_mape": t_mape,
            "points": sum(len(c["points"]) for c in relevant) or (fit.n_points if fit else 0),
            "applies": [c["name"] for c in relevant] or ["none: same device, model and tp (the source's own error)"],
            "method": ("step-time APE of transfer_checks(): transfers with published answers (a model+TP change, "
                       "a GPU change); the band is the larger MAPE of those that match this transfer, combined in "
                       "quadrature with the source profile's holdout MAPE"
                       + ("" if src_mape is not None else " (source has no fit statistics)")),
            "checks": [{k: c[k] for k in ("name", "reference", "mape", "max_ape", "points")} for c in checks]}
