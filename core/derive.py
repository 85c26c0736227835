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

from agentwatt.core.gpus import get_gpu
from agentwatt.core.models import ModelSpec
from agentwatt.core.profile import LatencyModel

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
    mape: float
    n: int



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
    comm_const = 2 * L * alpha
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


def fits_for(gpu: str) -> tuple[ChipFit, EngineFit, str]:
    """The chip and engine fits a GPU uses, and how they were chosen: its own measurements, its
    chip's (same silicon, other memory), or the mean of the measured GPUs (another chip)."""
    t = efficiencies()
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
                                                                     "gqa_reread")},
                            mape=float("nan"), n=0)
            how += "; engine: mean of the measured GPUs"
    return chip, eng, how


def allreduce_for(gpu: str, tp: int) -> AllReduce | None:
    if tp <= 1:
        return None
    t = efficiencies()
    net = t["allreduce"].get(t["chip_of"].get(gpu) or "", None) or t["allreduce"]["a100-80gb"]
    a, b = net.get(str(tp)) or net[max(net, key=int)]
    return AllReduce(alpha_s=a, beta_bytes_per_s=b)


def derive_latency(model: ModelSpec, gpu: str, tp: int = 1, *, weight_bytes: int = 2,
                   kv_bytes: int = 2) -> tuple[LatencyModel, str]:
    """The step-time model of ``model`` on ``tp`` × ``gpu`` and a line saying where it came from."""
    get_gpu(gpu)
    chip, eng, how = fits_for(gpu)
    return latency_model(model, gpu, tp, chip, eng, allreduce_for(gpu, tp), weight_bytes=weight_bytes,
                         kv_bytes=kv_bytes), how
