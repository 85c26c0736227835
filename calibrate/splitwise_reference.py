"""Reference profiles from the first release, kept for the roofline transfer checks (``calibrate transfer``):

The paper's setup (Kim et al., HPCA 2026, docs/paper.md §1.3): Llama-3.1-8B on one A100-40GB and
Llama-3.1-70B on 8×A100-40GB (TP8 implied). Nobody measured these exact pairs with our step
model, so each profile is an estimate assembled from cited numbers; every number below names its
source (docs/paper.md / docs/power.md sections; tags [P] primary, [Q] paper quote, [I] our arithmetic).

The bundled profiles are now built from measurements (``calibrate/published.py``); these estimates
stay only as the reference the roofline transfer (``calibrate/transfer.py``) is checked against.
"""
from __future__ import annotations


import numpy as np
from scipy.optimize import nnls

from agentwatt.core.gpus import GPUS
from agentwatt.core.profile import (FitStats, Hardware, LatencyModel, ModelShape, PowerModel,
                                         Profile)

# ------------------------------------------------------------------ model shapes (public configs)
# Llama-3.1 configs as published with the weights (config.json of meta-llama/Llama-3.1-8B and -70B):
LLAMA_31_8B = ModelShape(name="llama-3.1-8b", n_layers=32, hidden_size=4096, n_heads=32, n_kv_heads=8,
                         head_dim=128, intermediate_size=14336, vocab_size=128256,
                         n_params=8_030_261_248, dtype_bytes=2)
LLAMA_31_70B = ModelShape(name="llama-3.1-70b", n_layers=80, hidden_size=8192, n_heads=64, n_kv_heads=8,
                          head_dim=128, intermediate_size=28672, vocab_size=128256,
                          n_params=70_553_706_496, dtype_bytes=2)

# ------------------------------------------------------------------ A100-SXM4 (GPU catalog, core/gpus.py)
A100_40GB_HBM_BPS = GPUS["a100-40gb"].hbm_gbps * 1e9        # 1,555 GB/s HBM2 (NVIDIA A100 datasheet)
A100_80GB_HBM_BPS = GPUS["a100-80gb"].hbm_gbps * 1e9        # 2,039 GB/s (docs/power.md §4.2 [P])
A100_BF16_FLOPS = GPUS["a100-40gb"].bf16_dense_tflops * 1e12  # dense BF16, 40GB and 80GB (docs/power.md §4.2 [P])
A100_TDP_W = GPUS["a100-40gb"].tdp_w                         # SXM TDP (docs/power.md §4.2 [P])
A100_MEM_GIB = GPUS["a100-40gb"].mem_gib

# ------------------------------------------------------------------ published power (per GPU)
A100_IDLE_W = GPUS["a100-80gb"].idle_w   # SplitwiseSim constant model, A100 idle (docs/power.md §3.1 [P]), borrowed for 40GB
A100_PREFILL_W = 400.0           # SplitwiseSim A100 prefill = TDP (docs/power.md §3.1 [P])
A100_DECODE_W = 250.0            # SplitwiseSim A100 decode (docs/power.md §3.1 [P])
# Splitwise perf_model.csv, Llama-2-70B A100 TP2: 294 W at batch 1 → 318 W at batch 16
# (docs/power.md §3.2 [I]) = +24 W over 4 doublings:
A100_DECODE_W_PER_DOUBLING_TP_SMALL = 24.0 / 4
# Same data at TP8: 174 W (batch 1), 174 W (8), 183 W (16) (docs/power.md §3.2 [I]):
A100_TP8_DECODE_W = 174.0
A100_TP8_DECODE_W_PER_DOUBLING = (183.0 - 174.0) / 4
# TP8 peak (prefill) 0.75–1.0 × TDP (docs/power.md §3.2 [I]); midpoint:
A100_TP8_PREFILL_W = 0.875 * A100_TDP_W

# ------------------------------------------------------------------ efficiency factors
# Prefill MFU on A100, Splitwise Llama-2-70B TP8: 30 %, 43 %, 34 % at 512/2048/8192 tokens
# (docs/power.md §4.3 [I]); the median:
A100_PREFILL_MFU = 0.34

# ShareGPT single-request mean latency on 8B/A100-40GB: 4.23 s (paper Table III, docs/paper.md §2.9 [Q]),
# ShareGPT mean lengths 161.31 in / 337.99 out (vLLM paper, docs/traces-survey.md §2.5 [P]).
PAPER_SHAREGPT_8B_LATENCY_S = 4.23
SHAREGPT_MEAN_IN = 161.31
SHAREGPT_MEAN_OUT = 337.99

# Splitwise measured step times, Llama-2-70B, A100 TP8 (docs/power.md §4.3 [P], splitwise-sim perf_model.csv).
# Decode: prompt 512, 128 output tokens → mean context 512 + 64 = 576 tokens per sequence [I].
SPLITWISE_TP8_DECODE_MS = {1: 44.9, 8: 46.5, 16: 50.4, 32: 53.2, 64: 71.3}
SPLITWISE_DECODE_CTX = 576
SPLITWISE_TP8_PREFILL_MS = {512: 96.0, 2048: 274.0, 8192: 1544.0}
# Roofline weight-read time of those runs at TP8 on the 80GB card: 8.5 ms (docs/power.md §4.3 [I]).
SPLITWISE_TP8_WEIGHT_READ_MS_80GB = 8.5

REFERENCES = [
    "Kim, Shin, Chung, Rhu, 'The Cost of Dynamic Reasoning', HPCA 2026 (arXiv 2506.04301): setup, Table III",
    "NVIDIA A100 Tensor Core GPU datasheet: 40GB SXM 1,555 GB/s, 312 TFLOP/s BF16, 400 W",
    "Patel et al., 'Splitwise', ISCA 2024; splitwise-sim configs/power_model/constant.yaml and data/perf_model.csv",
    "Kwon et al., 'Efficient Memory Management for LLM Serving with PagedAttention', SOSP 2023: ShareGPT lengths",
    "Meta Llama 3.1 model cards/configs (8B, 70B)",
]


def _attn_flops_per_unit(m: ModelShape) -> float:
    """FLOPs per unit of the A feature (chunk × context): QKᵀ and AV, 2 FLOPs per MAC each,
    causal half skipped → 2·layers·d_model [I from docs/power.md §4.1 with causal halving]."""
    return 2.0 * m.n_layers * m.hidden_size


def llama8b_a100_40gb() -> Profile:
    m = LLAMA_31_8B
    compute = A100_PREFILL_MFU * A100_BF16_FLOPS
    prefill_token_s = 2.0 * m.n_params / compute          # 2 FLOPs per parameter per token
    prefill_attn_s = _attn_flops_per_unit(m) / compute
    decode_seq_s = prefill_token_s                         # same GEMM work per decoded token
    # Bandwidth efficiency η fitted so the single-request ShareGPT mean matches the paper [I]:
    #   latency = [c0 + P·pt + P²·pa] + (O−1)·[c0 + ds + ctx·dc],  c0 = W/(η·BW), dc = kv/(η·BW),
    #   with P, O the ShareGPT means and ctx the mean context during decode ≈ P + O/2.
    P, O = SHAREGPT_MEAN_IN, SHAREGPT_MEAN_OUT
    ctx = P + O / 2
    fixed = P * prefill_token_s + P * P * prefill_attn_s + (O - 1) * decode_seq_s
    per_inv_eta = (O * m.weight_bytes + (O - 1) * ctx * m.kv_bytes_per_token) / A100_40GB_HBM_BPS
    eta = per_inv_eta / (PAPER_SHAREGPT_8B_LATENCY_S - fixed)
    bw = eta * A100_40GB_HBM_BPS
    lat = LatencyModel(
        overhead_s=m.weight_bytes / bw, prefill_token_s=prefill_token_s, prefill_attn_s=prefill_attn_s,
        decode_seq_s=decode_seq_s, decode_ctx_s=m.kv_bytes_per_token / bw,
        fit=FitStats(n_points=1, mape=0.0, max_ape=0.0,
                     note=(f"roofline with efficiency factors: prefill MFU {A100_PREFILL_MFU} (Splitwise A100 median); "
                           f"HBM efficiency {eta:.3f} fitted to one published figure (paper Table III ShareGPT "
                           f"4.23 s); no independent points, so no error band is claimed")))
    pw = PowerModel(available=True, source="published", idle_w=A100_IDLE_W, prefill_w=A100_PREFILL_W,
                    decode_base_w=A100_DECODE_W, decode_log2_batch_w=A100_DECODE_W_PER_DOUBLING_TP_SMALL,
                    max_w=A100_TDP_W,
                    fit=None)
    return Profile(
        name="llama-3.1-8b_a100-40gb", source="published/estimate", model=m,
        hardware=Hardware(device_name="NVIDIA A100-SXM4-40GB", kind="gpu", tp=1,
                          mem_gib_per_device=A100_MEM_GIB, tdp_w_per_device=A100_TDP_W),
        latency=lat, power=pw,
        provenance={"built_by": "agentwatt.calibrate.published.llama8b_a100_40gb", "date": "2026-11-25",
                    "hbm_efficiency_fitted": round(eta, 4), "references": REFERENCES,
                    "notes": ["estimate: not measured on this model/GPU pair",
                              "power: SplitwiseSim A100 constants (measured on A100-80GB DGX) with a batch slope "
                              "from Splitwise TP2 averages"]},
        measurements=[])


def llama70b_8xa100_40gb() -> Profile:
    m = LLAMA_31_70B
    tp = 8
    # 40GB card: weight reads take longer than on the 80GB card of the Splitwise runs [I]:
    extra_s = SPLITWISE_TP8_WEIGHT_READ_MS_80GB * 1e-3 * (A100_80GB_HBM_BPS / A100_40GB_HBM_BPS - 1.0)
    # KV read per context token per GPU at Splitwise's A100 TP2 achieved fraction, 62 % (docs/power.md §4.3):
    decode_ctx_s = (m.kv_bytes_per_token / tp) / (0.62 * A100_40GB_HBM_BPS)
    # Least squares (non-negative, relative error) on the measured TP8 points:
    rows, y = [], []
    for b, ms in SPLITWISE_TP8_DECODE_MS.items():
        t = ms * 1e-3 - decode_ctx_s * b * SPLITWISE_DECODE_CTX
        rows.append([1.0, 0.0, 0.0, b]); y.append(t)
    for s, ms in SPLITWISE_TP8_PREFILL_MS.items():
        rows.append([1.0, s, s * s, 0.0]); y.append(ms * 1e-3)
    A = np.array(rows)
    yv = np.array(y)
    w = 1.0 / yv
    coef, _ = nnls(A * w[:, None], yv * w)
    c0, pt, pa, ds = (float(x) for x in coef)
    pred = A @ coef
    ape = np.abs(pred - yv) / yv
    lat = LatencyModel(overhead_s=c0 + extra_s, prefill_token_s=pt, prefill_attn_s=pa, decode_seq_s=ds,
                       decode_ctx_s=decode_ctx_s,
                       fit=FitStats(n_points=len(yv), mape=float(ape.mean()), max_ape=float(ape.max()),
                                    note=("fitted to Splitwise's measured Llama-2-70B A100 TP8 step times "
                                          "(8 points, A100-80GB); +%.1f ms per step for the 40GB card's lower "
                                          "HBM bandwidth on the weight reads" % (extra_s * 1e3))))
    pw = PowerModel(available=True, source="published", idle_w=A100_IDLE_W, prefill_w=A100_TP8_PREFILL_W,
                    decode_base_w=A100_TP8_DECODE_W, decode_log2_batch_w=A100_TP8_DECODE_W_PER_DOUBLING,
                    max_w=A100_TDP_W, fit=None)
    return Profile(
        name="llama-3.1-70b_8xa100-40gb", source="published/estimate", model=m,
        hardware=Hardware(device_name="NVIDIA A100-SXM4-40GB", kind="gpu", tp=tp,
                          mem_gib_per_device=A100_MEM_GIB, tdp_w_per_device=A100_TDP_W),
        latency=lat, power=pw,
        provenance={"built_by": "agentwatt.calibrate.published.llama70b_8xa100_40gb", "date": "2026-11-25",
                    "references": REFERENCES,
                    "notes": ["estimate: Llama-2-70B step times stand in for Llama-3.1-70B (same layers, "
                              "heads and GQA; larger vocabulary adds ~0.2 GB of weight reads per GPU)",
                              "power: Splitwise TP8 per-GPU averages (decode-dominated) and peak range"]},
        measurements=[])


BUILDERS = {"llama-3.1-8b_a100-40gb": llama8b_a100_40gb, "llama-3.1-70b_8xa100-40gb": llama70b_8xa100_40gb}
