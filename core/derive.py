"""Derive a step-time model for any (model, GPU, TP, precision) from fitted GPU efficiencies.

The efficiencies (``data/efficiency.json``) are fitted to published measurements by
``calibrate/measured.py``: per chip, from operator profiles (``ChipFit``); per GPU, from end-to-end
engine runs (``EngineFit``). The shape comes from the model catalog (``core/models.py``), the
datasheet from the GPU catalog (``core/gpus.py``). Pure functions; no fitting here.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from agentwatt.core.errors import InputError
from agentwatt.core.gpus import get_gpu
from agentwatt.core.models import ModelSpec
from agentwatt.core.profile import FitStats, Hardware, LatencyModel, PowerModel, Profile

@dataclass(frozen=True, kw_only=True)
class ChipFit:
    """Efficiencies of one chip, fitted to operator measurements (Vidur)."""

    gpu: str
    eta_mem: float          # achieved share of HBM bandwidth streaming weights
    eta_compute: float      # achieved share of dense BF16 peak in large matmuls
    overlap_p: float        # smooth-max exponent between the two (∞ = hard roofline max)
    launch_s: float         # per linear op (4 per layer)
    elem_const_s: float     # elementwise ops per layer: constant
    elem_byte_s: float      # elementwise ops per layer: seconds per byte of activations (tokens × hidden × 2)
    linear_mape: float
    linear_n: int


@dataclass(frozen=True, kw_only=True)
class EngineFit:
    """What the operators do not show, fitted to end-to-end vLLM runs on one GPU."""

    gpu: str
    floor_s: float          # per step (CPU scheduling, Python, launch of the whole graph)
    seq_s: float            # per sequence in the step (input preparation, sampling)
    eta_kv: float           # bandwidth share reading the KV cache in decode attention
    eta_attn: float         # compute share of prefill attention
    gqa_reread: float = 0.0  # share of a KV head's re-reads by each further query head of its group that miss cache
    allreduce_scale: float = 1.0  # the engine's all-reduce latency ÷ NCCL's (vLLM runs its own kernel for small messages)
    mape: float
    n: int



# GPUs whose tensor cores run FP8 at twice the dense BF16 rate (NVIDIA H100/H200 datasheets: 1,979 vs
# 989 TFLOP/s dense; B200: 4.5 vs 2.25 PFLOP/s; L40S (Ada): 733 vs 362 TFLOP/s). Ampere has no FP8.
FP8_TENSOR_CORES = frozenset({"h100", "h200", "b200", "l40s"})


@dataclass(frozen=True, kw_only=True)
class AllReduce:
    """One NCCL all-reduce among ``tp`` GPUs: alpha seconds + bytes / beta."""

    alpha_s: float
    beta_bytes_per_s: float


def latency_model(model: ModelSpec, gpu: str, tp: int, chip: ChipFit, eng: EngineFit,
                  allreduce: AllReduce | None = None, *, weight_bytes: int = 2, kv_bytes: int = 2) -> LatencyModel:
    """The step-time coefficients of ``model`` on ``tp`` × ``gpu`` (see the module docstring)."""
    g = get_gpu(gpu)
    bw, peak = g.mem_bytes_per_s, g.flops
    if weight_bytes == 1 and gpu in FP8_TENSOR_CORES:
        peak *= 2.0   # FP8 weights and activations run the matmuls on FP8 tensor cores
    L, h = model.n_layers, model.hidden_size
    dense = model.attn_params_per_layer + (model.expert_params if model.experts <= 1 else 0)
    experts = model.experts * model.expert_params if model.experts > 1 else 0
    lm = model.lm_head_params
    eff_bw = chip.eta_mem * bw
    weight_s = (L * dense + lm) * weight_bytes / tp / eff_bw
    expert_weight_s = L * experts * weight_bytes / tp / eff_bw
    active = model.layer_params_active
    token_s = 2.0 * L * active / tp / (chip.eta_compute * peak)
    alpha, beta = (allreduce.alpha_s, allreduce.beta_bytes_per_s) if tp > 1 else (0.0, math.inf)
    comm_const = 2 * L * alpha * eng.allreduce_scale
    comm_token = 2 * L * h * 2 / beta if tp > 1 else 0.0
    elem_token = L * chip.elem_byte_s * h * 2 / tp
    per_token = elem_token + comm_token
    overhead = eng.floor_s + L * (4 * chip.launch_s + chip.elem_const_s) + comm_const
    lm_flops_s = 2.0 * lm / tp / (chip.eta_compute * peak)
    return LatencyModel(
        overhead_s=overhead, prefill_token_s=per_token,
        prefill_attn_s=model.attn_flops_per_pair / tp / (eng.eta_attn * peak),
        decode_seq_s=per_token + eng.seq_s + lm_flops_s,
        # decode attention per context token: reading its K and V. vLLM's paged-attention kernel runs one
        # thread block per query head, so with grouped-query attention each KV head is read once per
        # query head of its group; the L2 cache serves part of the re-reads (1 - gqa_reread)
        decode_ctx_s=model.kv_bytes_per_token(kv_bytes) * (
            1.0 + eng.gqa_reread * (model.n_heads / model.n_kv_heads - 1.0)) / (eng.eta_kv * bw) / tp,
        weight_s=weight_s, token_s=token_s, overlap_p=chip.overlap_p, expert_weight_s=expert_weight_s,
        experts=model.experts, experts_per_token=model.experts_per_token)




@lru_cache(maxsize=1)
def efficiencies() -> dict:
    """The shipped fit (``data/efficiency.json``): chips, engines, all-reduce by network and TP."""
    text = (resources.files("agentwatt.core") / "data" / "efficiency.json").read_text(encoding="utf-8")
    return json.loads(text)


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def fits_for(gpu: str, table: dict | None = None) -> tuple[ChipFit, EngineFit, str]:
    """The chip and engine fits a GPU uses, and how they were chosen: its own measurements, its
    chip's (same silicon, other memory), or the mean of the measured GPUs (another chip). ``table``:
    the fitted efficiencies (default the shipped ``data/efficiency.json``; the leave-one-out checks
    pass one fitted without a model)."""
    t = table if table is not None else efficiencies()
    chip_key = t["chip_of"].get(gpu)
    if chip_key in t["chips"]:
        chip = ChipFit(**{**t["chips"][chip_key], "gpu": gpu})
        how = "operators measured on this GPU" if chip_key == gpu else f"operators measured on {chip_key} (same chip)"
    else:
        rows = list(t["chips"].values())
        chip = ChipFit(gpu=gpu, **{k: _mean(rows, k) for k in (
            "eta_mem", "eta_compute", "overlap_p", "launch_s", "elem_const_s", "elem_byte_s", "linear_mape")},
            linear_n=0)
        how = "operator efficiencies: mean of the measured chips (no measurement of this chip)"
    if gpu in t["engines"]:
        eng = EngineFit(**t["engines"][gpu])
        how += "; engine fitted to vLLM runs on this GPU"
    else:
        same = [k for k in t["engines"] if t["chip_of"].get(k) == chip_key and chip_key is not None]
        if same:
            eng = EngineFit(**{**t["engines"][same[0]], "gpu": gpu})
            how += f"; engine from {same[0]} (same chip)"
        else:
            rows = list(t["engines"].values())
            eng = EngineFit(gpu=gpu, **{k: _mean(rows, k) for k in ("floor_s", "seq_s", "eta_kv", "eta_attn",
                                                                     "gqa_reread", "allreduce_scale")},
                            mape=float("nan"), n=0)
            how += "; engine: mean of the measured GPUs"
    return chip, eng, how


def allreduce_for(gpu: str, tp: int, table: dict | None = None) -> AllReduce | None:
    if tp <= 1:
        return None
    t = table if table is not None else efficiencies()
    net = t["allreduce"].get(t["chip_of"].get(gpu) or "", None) or t["allreduce"]["a100-80gb"]
    a, b = net.get(str(tp)) or net[max(net, key=int)]
    return AllReduce(alpha_s=a, beta_bytes_per_s=b)


def derive_latency(model: ModelSpec, gpu: str, tp: int = 1, *, weight_bytes: int = 2,
                   kv_bytes: int = 2, table: dict | None = None) -> tuple[LatencyModel, str]:
    """The step-time model of ``model`` on ``tp`` × ``gpu`` and a line saying where it came from."""
    get_gpu(gpu)
    chip, eng, how = fits_for(gpu, table)
    return latency_model(model, gpu, tp, chip, eng, allreduce_for(gpu, tp, table), weight_bytes=weight_bytes,
                         kv_bytes=kv_bytes), how


def hardware_for(gpu: str, tp: int) -> Hardware:
    """The ``Hardware`` block of a profile on ``tp`` GPUs of the catalog's ``gpu``."""
    g = get_gpu(gpu)
    return Hardware(device_name=g.name, kind="gpu", tp=tp, mem_gib_per_device=g.mem_gib, tdp_w_per_device=g.tdp_w)


def derive_power(gpu: str) -> tuple[PowerModel, str]:
    """The activity power model of ``gpu``: its own fit, its chip sibling's (same silicon; capped at
    this part's TDP), or the measured GPUs' levels as fractions of TDP (another chip)."""
    t = efficiencies()
    g = get_gpu(gpu)
    fits = t.get("power", {})
    sibling = [k for k in fits if k == gpu] or [k for k in fits if t["chip_of"].get(k) == t["chip_of"].get(gpu)
                                                  and t["chip_of"].get(gpu) is not None]
    if sibling:
        f = fits[sibling[0]]
        how = "power fitted on this GPU" if sibling[0] == gpu else f"power fitted on {sibling[0]} (same chip)"
        vals = {k: f[k] for k in ("idle_w", "compute_w", "memory_w", "parked_w")}
        fit = FitStats(n_points=f["n"], mape=f["mape"], max_ape=float("nan"), note=how)
    else:
        if g.tdp_w is None:
            return PowerModel(available=False, source="unavailable",
                              reason=f"GPU {gpu}: no TDP in the catalog to scale measured power levels"), \
                "power unavailable (no TDP)"
        vals = {k: g.tdp_w * sum(f[k] / f["tdp_w"] for f in fits.values()) / len(fits)
                for k in ("idle_w", "compute_w", "memory_w", "parked_w")}
        if g.idle_w is not None:   # the catalog's measured bare idle wins for the parked level
            vals["parked_w"] = min(g.idle_w, vals["idle_w"])
        how = "power: measured GPUs' levels as fractions of TDP (no measurement of this chip)"
        fit = FitStats(n_points=0, mape=float("nan"), max_ape=float("nan"), note=how)
    return PowerModel(available=True, source="published", max_w=g.tdp_w, fit=fit, **vals), how


def parse_derived_name(name: str) -> tuple[str, str, int, str] | None:
    """``<model>_<gpu>``, ``<model>_<N>x<gpu>``, optionally ``_fp8`` (weights and KV): the parts, or None."""
    parts = name.split("_")
    if len(parts) not in (2, 3):
        return None
    precision = "bf16"
    if len(parts) == 3:
        if parts[2] not in ("fp8", "bf16", "fp16"):
            return None
        precision = parts[2]
    model, hw = parts[0], parts[1]
    tp = 1
    head, sep, rest = hw.partition("x")
    if sep and head.isdigit():
        tp, hw = int(head), rest
    return model, hw, tp, precision


def derived_profile(name: str) -> Profile:
    """A profile derived for a catalog model on a catalog GPU (``parse_derived_name``'s grammar)."""
    from agentwatt.core.models import get_model, precision_bytes
    parsed = parse_derived_name(name)
    if parsed is None:
        raise InputError(f"profile {name!r}: expected <model>_<gpu>, <model>_<N>x<gpu> or either with _fp8")
    model_name, gpu, tp, precision = parsed
    m = get_model(model_name)
    g = get_gpu(gpu)
    if tp < 1 or m.n_heads % tp or m.n_kv_heads % tp and tp % m.n_kv_heads:
        raise InputError(f"profile {name!r}: TP {tp}: expected a divisor of {m.name}'s {m.n_heads} attention heads")
    nbytes = precision_bytes(precision)
    if g.mem_gib is not None and m.n_params * nbytes / tp > 0.9 * g.mem_gib * 2**30:
        raise InputError(f"profile {name!r}: weights need {m.n_params * nbytes / tp / 2**30:.1f} GiB per GPU, more "
                         f"than 90 % of its {g.mem_gib:g} GiB: expected a larger TP")
    lat, how = derive_latency(m, gpu, tp, weight_bytes=nbytes, kv_bytes=nbytes)
    power, how_p = derive_power(gpu)
    return Profile(name=name, source="transfer/estimate", model=m.shape(nbytes), hardware=hardware_for(gpu, tp),
                   latency=lat, power=power,
                   provenance={"built_by": "agentwatt.core.derive.derived_profile", "derived": True,
                               "latency_from": how, "power_from": how_p, "precision": precision,
                               "model_sources": list(m.source),
                               "error_band": _band(how)})


def _band(how: str) -> dict:
    """The error band of a derivation route, from the leave-one-out checks (``calibrate/measured.py``)."""
    t = efficiencies()
    cross = t.get("cross_chip_band", {})
    if "mean of the measured" in how:
        worst = max(cross.values(), key=lambda v: v["mape"]) if cross else None
        return {"route": "cross-chip (efficiencies of other chips, this datasheet)",
                "mape": worst and worst["mape"], "p90_ape": worst and worst["p90_ape"],
                "from": "leave-one-GPU-out over the measured GPUs (the worse of the two)"}
    return {"route": "measured chip, catalog shape", "from": "leave-one-model-out (benchmarks/published.py)",
            "note": "single requests: mean 6 %; closed batches: mean 11 % (benchmarks/published_results.txt)"}
