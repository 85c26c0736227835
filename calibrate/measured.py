"""Latency profiles from published GPU measurements (no GPU needed): fit, derive, check.

Data (``calibrate/data/measured/``, each with its licence; see its README.md):

* Vidur operator profiles (microsoft/vidur, MIT): CUDA times of each linear and elementwise op of one
  transformer layer on one TP rank, by tokens in the step, for 8 models at TP 1–8 on A100-80GB and
  H100 (``vidur_linear_ops.csv``), and NCCL all-reduce times by message size (``vidur_all_reduce.csv``);
* Argonne LLM-Inference-Bench (BSD-3): vLLM end-to-end latency of static batches (batch 1–64,
  input = output length 128–2048) for 7 models on A100-SXM4-40GB and H100-SXM (``argonne_vllm.csv``);
* SplitwiseSim (MIT): measured vLLM prompt and token times of Llama-2-70B at TP 2/4/8 on DGX-A100
  and DGX-H100 (``splitwise_perf.csv``).

Model of one engine step (``core/step.py`` evaluates it; this module sets its coefficients):

* linear layers: a smooth roofline max of the weight read and the matmul FLOPs,
  ``(W^p + F^p)^(1/p)`` with ``W = weight bytes / (η_mem·BW)`` and ``F = 2·params·T / (η_c·peak)``:
  η_mem, η_c, p and a launch time per op are fitted per GPU to Vidur's linear ops (all models, all TP);
* elementwise ops (norms, RoPE, activation, residual add): a constant and a per-token term per layer,
  fitted to Vidur's elementwise ops;
* tensor parallelism: two all-reduces per layer of ``tokens × hidden × 2`` bytes, α + bytes/β fitted
  to Vidur's all-reduce times per GPU and TP degree;
* attention: decode reads the KV cache (``C · kv bytes/token / (η_kv·BW)``), prefill computes
  ``A`` query-key pairs (``4·layers·heads·head_dim`` FLOPs each, at ``η_attn·peak``);
* the engine: a fixed CPU floor per step and a per-sequence cost (scheduling, sampling), which do not
  scale with bandwidth. η_kv, η_attn, the floor and the per-sequence cost are fitted per GPU to the
  Argonne vLLM runs (static batches simulated by ``static_batch``).

A (model, GPU) pair with measurements uses them; any other pair is derived from the nearest measured
GPU's efficiencies (same chip: A100-40GB from A100-80GB; other chips from the family mean) and the
model catalog's shape. ``leave_one_out`` refits without each measured model and reports the error of
the derivation, which is the band a derived profile carries.
"""
from __future__ import annotations

import csv
import math
from dataclasses import replace
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy.optimize import least_squares

from agentwatt.core import step
from agentwatt.core.errors import InputError
from agentwatt.core.gpus import GpuSpec, get_gpu
from agentwatt.core.models import ModelSpec, get_model
from agentwatt.core.derive import AllReduce, ChipFit, EngineFit, derive_latency, latency_model
from agentwatt.core.profile import LatencyModel

ARGONNE_HW = {"A100-SXM4-40GB": "a100-40gb", "H100-SXM-80GB": "h100"}
ARGONNE_MODEL = {"meta-llama/Llama-2-7b-hf": "llama-2-7b", "Qwen/Qwen2-7B": "qwen2.5-7b",
                 "meta-llama/Meta-Llama-3-8B": "llama-3-8b", "mistralai/Mistral-7B-v0.1": "mistral-7b-v0.1",
                 "meta-llama/Llama-2-70b-hf": "llama-2-70b", "meta-llama/Meta-Llama-3-70B": "llama-3-70b",
                 "Qwen/Qwen2-72B": "qwen2.5-72b"}
# Vidur profiled these chips; a GPU of the same chip with other memory uses its efficiencies
CHIP = {"a100-40gb": "a100-80gb", "a100-80gb": "a100-80gb", "h100": "h100", "h200": "h100"}
VIDUR_NET = {"a100-80gb": "a100_dgx", "h100": "h100_dgx"}
# vLLM without chunked prefill (the Argonne runs, vLLM 0.6 offline, 8k-context models): a prefill
# step takes whole prompts up to max(max_model_len, 2048) tokens [vLLM 0.6 SchedulerConfig default]
ARGONNE_MAX_BATCHED = 8192


def _rows(name: str) -> list[dict[str, str]]:
    text = (resources.files("agentwatt.calibrate") / "data" / "measured" / name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _linear_pred(x, rows, g: GpuSpec) -> np.ndarray:
    em, ec, p, launch = x
    out = np.empty(len(rows))
    for i, (m, tp, n) in enumerate(rows):
        params = m.attn_params_per_layer + m.experts * m.expert_params
        tm = params * 2 / tp / (em * g.mem_bytes_per_s)
        tc = 2 * params * n / tp / (ec * g.flops)
        out[i] = (tm ** p + tc ** p) ** (1 / p) + 4 * launch
    return out


@lru_cache(maxsize=None)
def fit_chip(gpu: str, exclude_model: str | None = None) -> ChipFit:
    g = get_gpu(gpu)
    data = [r for r in _rows("vidur_linear_ops.csv") if r["gpu"] == gpu and r["model"] != exclude_model]
    if not data:
        raise InputError(f"measured data: no Vidur operator profile for GPU {gpu!r}")
    rows = [(get_model(r["model"]), int(r["tp"]), float(r["num_tokens"])) for r in data]
    y = np.array([float(r["linear_ms"]) / 1e3 for r in data])
    res = least_squares(lambda x: np.log(_linear_pred(x, rows, g) / y), [0.8, 0.7, 2.0, 5e-6],
                        bounds=([0.05, 0.05, 1.0, 0.0], [1.2, 1.2, 50.0, 1e-3]))
    err = np.abs(_linear_pred(res.x, rows, g) / y - 1)
    # elementwise ops: t = a + b · (tokens · hidden · 2 / tp) bytes, linear least squares
    X = np.array([[1.0, n * m.hidden_size * 2 / tp] for m, tp, n in rows])
    ye = np.array([float(r["other_ms"]) / 1e3 for r in data])
    coef, *_ = np.linalg.lstsq(X / ye[:, None], np.ones_like(ye), rcond=None)   # relative error weights
    coef = np.maximum(coef, 0.0)
    return ChipFit(gpu=gpu, eta_mem=float(res.x[0]), eta_compute=float(res.x[1]), overlap_p=float(res.x[2]),
                   launch_s=float(res.x[3]), elem_const_s=float(coef[0]), elem_byte_s=float(coef[1]),
                   linear_mape=float(np.mean(err)), linear_n=len(y))


@lru_cache(maxsize=None)
def fit_allreduce(gpu: str, tp: int) -> tuple[float, float]:
    """(α seconds, β bytes/s) of one NCCL all-reduce among ``tp`` GPUs of a node (Vidur's DGX data)."""
    if tp <= 1:
        return 0.0, math.inf
    net = VIDUR_NET[CHIP.get(gpu, "a100-80gb")]
    pts = [(float(r["size_bytes"]), float(r["median_ms"]) / 1e3) for r in _rows("vidur_all_reduce.csv")
           if r["network_setup"] == net and int(r["num_workers"]) == tp]
    if not pts:
        raise InputError(f"measured data: no all-reduce measurement for {net} with {tp} GPUs")
    X = np.array([[1.0, s] for s, _ in pts])
    y = np.array([t for _, t in pts])
    coef, *_ = np.linalg.lstsq(X / y[:, None], np.ones_like(y), rcond=None)
    return float(max(coef[0], 0.0)), float(1.0 / max(coef[1], 1e-15))


def allreduce_for(gpu: str, tp: int) -> AllReduce | None:
    if tp <= 1:
        return None
    a, b = fit_allreduce(gpu, tp)
    return AllReduce(alpha_s=a, beta_bytes_per_s=b)


def static_batch(lat: LatencyModel, batch: int, prompt: int, output: int,
                 max_batched_tokens: int = ARGONNE_MAX_BATCHED) -> tuple[float, float]:
    """(TTFT of the last request, end-to-end seconds) of ``batch`` identical requests arriving at once
    on an engine without chunked prefill: whole prompts in prefill steps of up to
    ``max_batched_tokens`` tokens, then one decode step per further output token for the whole batch."""
    per_step = max(1, max_batched_tokens // prompt)
    t = 0.0
    left = batch
    while left > 0:
        k = min(per_step, left)
        t += step.step_s(lat, k * prompt, k * prompt * prompt, 0, 0)
        left -= k
    ttft = t
    n = output - 1
    if n > 0:
        blk = step.decode_block(lat, batch, batch * (prompt + 1))
        t += blk.end(n)
    return ttft, t


def kv_fits(m: ModelSpec, gpu: str, tp: int, tokens: int, gpu_memory_utilization: float = 0.9) -> bool:
    """Whether ``tokens`` tokens of KV fit beside the weights (vLLM's default memory share)."""
    free = tp * get_gpu(gpu).mem_gib * 2**30 * gpu_memory_utilization - m.n_params * 2
    return tokens * m.kv_bytes_per_token() <= free


def _argonne_cases(gpu: str, exclude_model: str | None = None, kv_limit: bool = True):
    out = []
    for r in _rows("argonne_vllm.csv"):
        if ARGONNE_HW.get(r["hardware"]) != gpu or r["metric"] not in ("e2e_latency_s", "ttft_s"):
            continue
        m = get_model(ARGONNE_MODEL[r["model"]])
        if m.name == exclude_model:
            continue
        tp, b, i, o = int(r["tp"]), int(r["batch"]), int(r["input_len"]), int(r["output_len"])
        if kv_limit and not kv_fits(m, gpu, tp, b * (i + o)):
            continue   # the KV cannot hold the batch: vLLM preempts and recomputes (left to the simulator)
        out.append((m, tp, b, i, o, float(r["value"])))
    return out


@lru_cache(maxsize=None)
def fit_engine(gpu: str, exclude_model: str | None = None) -> EngineFit:
    chip = fit_chip(CHIP[gpu], exclude_model)
    cases = _argonne_cases(gpu, exclude_model)
    if not cases:
        raise InputError(f"measured data: no end-to-end vLLM runs for GPU {gpu!r}")
    y = np.array([c[-1] for c in cases])

    # the KV cache streams from HBM like the weights: its bandwidth share is the chip's measured weight
    # streaming share (Vidur), not a free parameter (with one MHA model in the data, a free share and the
    # GQA re-read share cannot be told apart: leave-one-model-out on H100 drove it to 0.36)
    eta_kv = chip.eta_mem

    def pred(x):
        eng = EngineFit(gpu=gpu, floor_s=x[0], seq_s=x[1], eta_kv=eta_kv, eta_attn=x[2], gqa_reread=x[3],
                        allreduce_scale=x[4], mape=0, n=0)
        return np.array([static_batch(latency_model(m, gpu, tp, chip, eng, allreduce_for(gpu, tp)), b, i, o)[1]
                         for m, tp, b, i, o, _ in cases])
    # prefill attention: FlashAttention-2 reaches 50-73 % of A100 peak in its forward pass (Dao 2023,
    # arXiv 2307.08691, Fig. 4); pairs are counted without the causal half, so the share of the counted
    # FLOPs lies between 0.25 and 1.5
    # decode attention: KV bytes at eta_kv of HBM bandwidth, GQA re-reads (core/derive.py) between
    # none (0) and every query head reading its KV head from HBM (1)
    # all-reduce: vLLM replaces NCCL by its own one-shot kernel for small messages within a node
    # (vLLM 0.6 custom_all_reduce, messages < 8 MiB, TP <= 8): its latency is a share of NCCL's
    # (Vidur's measurements), fitted on the TP > 1 runs (0 for a GPU without any: 1, NCCL's)
    has_tp = any(c[1] > 1 for c in cases)
    res = least_squares(lambda x: np.log(pred(x) / y), [3e-3, 2e-5, 0.6, 0.2, 1.0 if not has_tp else 0.5],
                        bounds=([0.0, 0.0, 0.25, 0.0, 0.05 if has_tp else 0.999], [0.05, 1e-3, 1.5, 1.0, 2.0]))
    err = np.abs(pred(res.x) / y - 1)
    return EngineFit(gpu=gpu, floor_s=float(res.x[0]), seq_s=float(res.x[1]), eta_kv=eta_kv,
                     eta_attn=float(res.x[2]), gqa_reread=float(res.x[3]), allreduce_scale=float(res.x[4]),
                     mape=float(np.mean(err)), n=len(y))


@lru_cache(maxsize=None)
def latency_table(exclude_model: str | None = None) -> dict:
    """The fitted efficiencies in ``core/data/efficiency.json``'s layout (chips, engines, all-reduce),
    fitted now, optionally without every run of one model: ``core/derive.py`` derives from it exactly
    as it does from the shipped file, so the leave-one-out checks test the path users run."""
    from dataclasses import asdict
    return {"chip_of": dict(CHIP),
            "chips": {k: asdict(fit_chip(k, exclude_model)) for k in VIDUR_NET},
            "engines": {k: asdict(fit_engine(k, exclude_model)) for k in ARGONNE_HW.values()},
            "allreduce": {k: {str(tp): list(fit_allreduce(k, tp)) for tp in (2, 4, 8)} for k in VIDUR_NET}}


def derive(model: str, gpu: str, tp: int = 1, *, weight_precision: str = "bf16", kv_precision: str = "bf16",
           exclude_model: str | None = None) -> LatencyModel:
    """``core.derive.derive_latency`` on efficiencies fitted now (without ``exclude_model``'s runs)."""
    from agentwatt.core.models import precision_bytes
    return derive_latency(get_model(model), gpu, tp, weight_bytes=precision_bytes(weight_precision, "weight precision"),
                          kv_bytes=precision_bytes(kv_precision, "kv precision"), table=latency_table(exclude_model))[0]


def efficiency_table() -> dict:
    """Everything ``core/derive.py`` needs, fitted now: written to ``core/data/efficiency.json``."""
    power = {}
    for k in PARKED_W:
        if k in ARGONNE_POWER_HW.values():
            pm = fit_power(k)
            power[k] = {"idle_w": pm.idle_w, "compute_w": pm.compute_w, "memory_w": pm.memory_w,
                        "parked_w": pm.parked_w, "tdp_w": get_gpu(k).tdp_w, "mape": pm.fit.mape, "n": pm.fit.n_points}
    return {"about": ("GPU efficiencies fitted by agentwatt.calibrate.measured to published measurements: "
                      "Vidur operator and all-reduce profiles (microsoft/vidur, MIT), Argonne LLM-Inference-Bench "
                      "vLLM runs (BSD-3); see calibrate/data/measured/README.md"),
            **latency_table(), "power": power, "cross_chip_band": leave_one_gpu_out()}


def write_efficiency(path=None):
    import json
    from pathlib import Path
    path = path or Path(__file__).resolve().parents[1] / "core" / "data" / "efficiency.json"
    Path(path).write_text(json.dumps(efficiency_table(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ power
# Bare idle (no process, no CUDA context) and what a loaded model adds: H100 68-69 W in an
# nvidia-smi snapshot of LLM-Inference-Bench (llama.cpp/H100/README.MD @4211f5d, BSD-3); A100 63 W
# (SplitwiseSim constant.yaml idle, MIT); a CUDA context adds 26-50 W on HBM GPUs (Vadari et al.,
# "The Model Parking Tax", arXiv 2605.23918, abstract).
PARKED_W = {"a100-40gb": 63.0, "a100-80gb": 63.0, "h100": 68.5}
CONTEXT_W = (26.0, 50.0)
ARGONNE_POWER_HW = {"A100": "a100-40gb", "H100": "h100"}
IDLE_TAIL_S = 1.0   # LLM-Inference-Bench samples one generate() call plus ~1 s of idle after it


def static_batch_energy(lat: LatencyModel, power, batch: int, prompt: int, output: int,
                        max_batched_tokens: int = ARGONNE_MAX_BATCHED) -> tuple[float, float]:
    """(seconds, joules per device) of a static batch (``static_batch``) under an activity power model."""
    per_step = max(1, max_batched_tokens // prompt)
    t = e = 0.0
    left = batch
    while left > 0:
        k = min(per_step, left)
        P, A = k * prompt, k * prompt * prompt
        dt = step.step_s(lat, P, A, 0, 0)
        tc, tm = step.activity(lat, P, A, 0, 0)
        e += dt * power.activity_w(min(1.0, tc / dt), min(1.0, tm / dt))
        t += dt
        left -= k
    n = output - 1
    pieces = 16
    for j in range(pieces):          # the decode run, integrated piecewise (power rises with context)
        k0, k1 = n * j // pieces, n * (j + 1) // pieces
        if k1 <= k0:
            continue
        ctx = batch * (prompt + 1 + (k0 + k1) / 2)
        dt = step.step_s(lat, 0, 0, batch, ctx)
        tc, tm = step.activity(lat, 0, 0, batch, ctx)
        e += (k1 - k0) * dt * power.activity_w(min(1.0, tc / dt), min(1.0, tm / dt))
        t += (k1 - k0) * dt
    return t, e


def _power_cases(gpu: str, exclude_model: str | None = None):
    out = []
    for r in _rows("argonne_vllm_power.csv"):
        if ARGONNE_POWER_HW.get(r["hardware"]) != gpu or "Fig_16" not in r["source"]:
            continue
        m = get_model(ARGONNE_MODEL[r["model"]])
        if m.name == exclude_model:
            continue
        tp, b, i, o = int(r["tp"]), int(r["batch"]), int(r["input_len"]), int(r["output_len"])
        if not kv_fits(m, gpu, tp, b * (i + o)):   # vLLM preempts: not a static batch
            continue
        out.append((m, tp, b, i, o,
                    float(r["latency_s"]), float(r["avg_power_w"]), float(r["energy_per_request_j"])))
    return out


@lru_cache(maxsize=None)
def fit_power(gpu: str, exclude_model: str | None = None):
    """Idle-with-model, compute and memory watts of ``gpu`` fitted to measured average power of vLLM
    static batches (NVML, per GPU, the run plus a 1 s idle tail)."""
    from agentwatt.core.profile import FitStats, PowerModel
    g = get_gpu(gpu)
    cases = _power_cases(gpu, exclude_model)
    lats = [derive(m.name, gpu, tp, exclude_model=exclude_model) for m, tp, *_ in cases]
    y = np.array([c[6] for c in cases])
    parked = PARKED_W[gpu]

    def model(x):
        return PowerModel(available=True, source="published", idle_w=x[0], compute_w=x[1], memory_w=x[2],
                          parked_w=parked, max_w=g.tdp_w)

    def pred(x):
        pm = model(x)
        out = []
        for lat, (m, tp, b, i, o, *_rest) in zip(lats, cases):
            t, e = static_batch_energy(lat, pm, b, i, o)
            out.append((e + pm.idle_w * IDLE_TAIL_S) / (t + IDLE_TAIL_S))
        return np.array(out)
    res = least_squares(lambda x: pred(x) / y - 1, [parked + 38, g.tdp_w * 0.4, g.tdp_w * 0.3],
                        bounds=([parked + CONTEXT_W[0], 0.0, 0.0], [parked + CONTEXT_W[1], g.tdp_w, g.tdp_w]))
    err = np.abs(pred(res.x) / y - 1)
    pm = model(res.x)
    return PowerModel(**{**pm.__dict__, "fit": FitStats(
        n_points=len(y), mape=float(err.mean()), max_ape=float(err.max()),
        note="average power of LLM-Inference-Bench vLLM static batches (NVML, GPU 0, 1 s idle tail included)")})


# ------------------------------------------------------------------------------ transfer bands
def cross_chip(target: str, source: str) -> tuple[ChipFit, EngineFit]:
    """The efficiencies a GPU would get if only ``source`` had been measured (chip and engine)."""
    chip = replace(fit_chip(CHIP[source]), gpu=target)
    eng = replace(fit_engine(source), gpu=target)
    return chip, eng


def leave_one_gpu_out() -> dict[str, dict[str, float]]:
    """Each measured GPU's end-to-end runs predicted from the OTHER GPU's efficiencies and this GPU's
    datasheet: the error band of the cross-chip route (what a derived B200 or L40S profile carries)."""
    out = {}
    gpus = list(ARGONNE_HW.values())
    for target in gpus:
        source = next(g for g in gpus if g != target)
        chip, eng = cross_chip(target, source)
        errs = []
        for m, tp, b, i, o, y in _argonne_cases(target):
            lat = latency_model(m, target, tp, chip, eng, allreduce_for(target, tp))
            errs.append(static_batch(lat, b, i, o)[1] / y - 1)
        e = np.abs(np.array(errs))
        out[target] = {"from": source, "n": len(errs), "mape": float(e.mean()), "p90_ape": float(np.percentile(e, 90)),
                       "bias": float(np.mean(errs))}
    return out
