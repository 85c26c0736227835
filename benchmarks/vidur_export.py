"""Export an agentwatt profile to Vidur 0.0.26's profiling schema, and a trace to its CSV schema.

Vidur (PyPI ``vidur==0.0.26``) predicts the time of one iteration (one engine step) from
per-layer operator times, in milliseconds per layer, that it reads from profiling CSVs
(``docs/anchors.md`` §5). Its per-iteration time, as computed by its native
``ExecutionTime.total_time`` (checked on 0.0.26: every term below is multiplied by the number of
layers, ``attn_kv_cache_save`` is left out of the sum, and TP/PP communication is 0 at TP1 PP1)::

    step_ms = L * ( attn_pre_proj(T8) + attn_post_proj(T8) + attn_rope(T8)
                  + mlp_up_proj(T8) + mlp_down_proj(T8) + mlp_act(T8)
                  + input_layernorm(T8) + post_attention_layernorm(T8) + add(T8)
                  + attn_decode(D, K_dec) * (1 + f_gqa * [D > 1])
                  + sum over prefill chunks i of attn_prefill(K_i, p32_i) )

with ``T8`` the batch's token count rounded *up* to a multiple of 8, ``D`` the decoding
sequences, ``K_dec`` the integer mean of their KV lengths (new token included) rounded up to the
KV granularity ``g``, ``K_i`` a chunk's KV length *including the chunk* rounded up to ``g``, and
``p32_i`` the chunk length rounded up to 32. ``f_gqa`` is Vidur's
``attention_decode_batching_overhead_fraction`` (0.1 by default for GQA models); the benchmark
passes 0.

Our step model (``core/profile.py``)::

    step_s = overhead + c_p * P + a * sum_i p_i * K_i + c_d * D + e * sum_j k_j

maps onto it exactly at the grid points (``T`` a multiple of 8, every K a multiple of g, every
p a multiple of 32):

* the linear-in-tokens cost goes either (``token_op="mlp"``, the recipe of docs/anchors.md §5) into
  ONE op, ``mlp_up_proj(n) = min(c_p, c_d) * n / L``, which Vidur charges on all tokens of the
  batch, prefill and decode alike (if ``c_p != c_d`` the excess goes per token into
  ``attn_prefill`` as ``(c_p - c_d) * p`` or into ``attn_decode`` as ``(c_d - c_p) * D``; the
  bundled A100 profile has ``c_p == c_d``); or (``token_op="attention"``) into the attention
  ops, ``c_p * p`` per prefill chunk and ``c_d * D`` per decode batch, with ``mlp_up_proj = 0``;
* the KV-dependent cost goes into ``attn_prefill(K, p) = a * p * K / L`` and
  ``attn_decode(D, K) = e * D * K / L``;
* the fixed per-step overhead goes into ``add``, a per-layer op that Vidur charges once per layer
  for any token count, as ``overhead / L``: L layers × overhead / L = overhead once per
  iteration. (0.0.26 has no per-iteration CPU-overhead term that can be fed from a CSV: its
  pipeline-communication term is skipped on the last stage, i.e. always at PP1.)
* every other op is 0.

Off the grid Vidur rounds up, so it charges a little more than our model. With
``token_op="mlp"``: up to ``7 * c`` per iteration for the tokens (1.06 ms with the A100 profile,
against a 12.3 ms overhead: a lone decoding sequence is charged 8 tokens, +8.5 % per step). With
``token_op="attention"``: decode steps are exact in D, and a prefill chunk is charged as if it
were rounded up to a multiple of 32 tokens (up to ``31 * c`` = 4.7 ms, once per prompt: its last
chunk). Either way up to ``(g-1) * e * D`` for the decode KV, and the KV rounding of prefill
attention.
``vidur_step_s`` below reproduces Vidur's lookup rules so the benchmark can report that
inflation; ``tests/test_benchmarks_export.py`` checks the grid points.

Vidur trains a random forest per op on these rows and then predicts on a fixed grid; the rows we
write ARE that grid (plus every token count for the 1-D ops), so the forest only has to
reproduce the values at points it was trained on.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

# 1-D ops of Vidur's mlp.csv (per layer, a function of the batch's token count)
MLP_OPS = ("attn_pre_proj", "attn_post_proj", "attn_rope", "mlp_up_proj", "mlp_down_proj", "mlp_act",
           "input_layernorm", "post_attention_layernorm", "add")
TOKEN_OP = "mlp_up_proj"   # carries the linear-in-tokens cost
OVERHEAD_OP = "add"        # carries overhead / L

VIDUR_MODEL_NAME = "meta-llama/Llama-3-8B"
VIDUR_BLOCK_SIZE = 16


@dataclass(frozen=True)
class Grid:
    """The points Vidur 0.0.26 predicts on (its ``_predict_for_*`` ranges)."""

    max_tokens: int = 4096          # prediction_max_tokens_per_request
    max_batch: int = 128            # prediction_max_batch_size
    max_chunk: int = 512            # prediction_max_prefill_chunk_size
    kv_granularity: int = 16        # kv_cache_prediction_granularity


@dataclass(frozen=True)
class StepCoefficients:
    """Our step model in seconds (``LatencyModel`` fields), plus the layer count."""

    overhead_s: float
    prefill_token_s: float
    prefill_attn_s: float
    decode_seq_s: float
    decode_ctx_s: float
    n_layers: int
    latency: object = None   # the LatencyModel: its smooth-roofline linear term goes into the mlp op

    @classmethod
    def from_profile(cls, profile) -> "StepCoefficients":
        lat = profile.latency
        return cls(lat.overhead_s, lat.prefill_token_s, lat.prefill_attn_s, lat.decode_seq_s, lat.decode_ctx_s,
                   profile.model.n_layers, lat)

    def linear_s(self, n) -> np.ndarray | float:
        """The matmuls' smooth roofline at ``n`` batch tokens (0 for an additive profile)."""
        from agentwatt.core.step import linear_s
        if self.latency is None:
            return np.zeros_like(np.asarray(n, dtype=float))
        return np.vectorize(lambda x: linear_s(self.latency, float(x)))(np.asarray(n, dtype=float))

    @property
    def token_s(self) -> float:
        return min(self.prefill_token_s, self.decode_seq_s)


# ----------------------------------------------------------------------------------- op values
TOKEN_OPS = ("mlp", "attention")


def _check_token_op(token_op: str) -> None:
    if token_op not in TOKEN_OPS:
        raise ValueError(f"token_op = {token_op!r}: expected one of {', '.join(TOKEN_OPS)}")


def token_op_ms(c: StepCoefficients, n: np.ndarray | int, token_op: str = "mlp") -> np.ndarray | float:
    """``mlp_up_proj`` per layer at ``n`` batch tokens."""
    _check_token_op(token_op)
    per = c.token_s if token_op == "mlp" else 0.0
    # the roofline term is a function of the batch's tokens: it lives in this op in both modes
    return (per * np.asarray(n, dtype=float) + c.linear_s(n)) * 1e3 / c.n_layers


def overhead_op_ms(c: StepCoefficients) -> float:
    return c.overhead_s * 1e3 / c.n_layers


def attn_prefill_ms(c: StepCoefficients, kv: np.ndarray | int, chunk: np.ndarray | int,
                    token_op: str = "mlp") -> np.ndarray | float:
    """Per layer, one chunk of ``chunk`` tokens whose KV length (chunk included) is ``kv``."""
    _check_token_op(token_op)
    kv = np.asarray(kv, dtype=float)
    chunk = np.asarray(chunk, dtype=float)
    per = c.prefill_token_s - c.token_s if token_op == "mlp" else c.prefill_token_s
    return (c.prefill_attn_s * chunk * kv + per * chunk) * 1e3 / c.n_layers


def attn_decode_ms(c: StepCoefficients, batch: np.ndarray | int, kv: np.ndarray | int,
                   token_op: str = "mlp") -> np.ndarray | float:
    """Per layer, ``batch`` decoding sequences whose mean KV length (new token included) is ``kv``."""
    _check_token_op(token_op)
    batch = np.asarray(batch, dtype=float)
    kv = np.asarray(kv, dtype=float)
    per = c.decode_seq_s - c.token_s if token_op == "mlp" else c.decode_seq_s
    return (c.decode_ctx_s * batch * kv + per * batch) * 1e3 / c.n_layers


# ------------------------------------------------------------------------------------- tables
def mlp_table(c: StepCoefficients, shape: dict, grid: Grid, token_op: str = "mlp") -> pd.DataFrame:
    """Rows of Vidur's ``mlp.csv``: every token count 1..max_tokens (the grid it predicts on)."""
    n = np.arange(1, grid.max_tokens + 1)
    df = pd.DataFrame({"num_tokens": n})
    for op in MLP_OPS:
        df[f"time_stats.{op}.median"] = 0.0
    df[f"time_stats.{TOKEN_OP}.median"] = token_op_ms(c, n, token_op)
    df[f"time_stats.{OVERHEAD_OP}.median"] = overhead_op_ms(c)
    df["n_head"] = shape["n_heads"]
    df["n_kv_head"] = shape["n_kv_heads"]
    df["n_embd"] = shape["hidden_size"]
    df["n_expanded_embd"] = shape["intermediate_size"]
    df["vocab_size"] = shape["vocab_size"]
    df["use_gated_mlp"] = True
    df["num_tensor_parallel_workers"] = 1
    return df


def attention_table(c: StepCoefficients, shape: dict, grid: Grid, token_op: str = "mlp") -> pd.DataFrame:
    """Rows of Vidur's ``attention.csv``: decode rows (``prefill_chunk_size = 0``) on the
    (batch, KV) grid, prefill rows on the (KV, chunk) grid."""
    g = grid.kv_granularity
    kv = np.arange(0, grid.max_tokens + 1, g)
    b = np.arange(1, grid.max_batch + 1)
    bb, kk = np.meshgrid(b, kv, indexing="ij")
    dec = pd.DataFrame({"prefill_chunk_size": 0, "batch_size": bb.ravel(), "kv_cache_size": kk.ravel()})
    dec["time_stats.attn_decode.median"] = attn_decode_ms(c, dec["batch_size"].to_numpy(), dec["kv_cache_size"].to_numpy(),
                                                         token_op)
    dec["time_stats.attn_prefill.median"] = 0.0
    chunks = np.arange(32, grid.max_chunk + 1, 32)
    kk, pp = np.meshgrid(kv, chunks, indexing="ij")
    pre = pd.DataFrame({"prefill_chunk_size": pp.ravel(), "batch_size": 1, "kv_cache_size": kk.ravel()})
    pre["time_stats.attn_prefill.median"] = attn_prefill_ms(c, pre["kv_cache_size"].to_numpy(),
                                                            pre["prefill_chunk_size"].to_numpy(), token_op)
    pre["time_stats.attn_decode.median"] = 0.0
    df = pd.concat([dec, pre], ignore_index=True)
    df["time_stats.attn_kv_cache_save.median"] = 0.0
    df["n_embd"] = shape["hidden_size"]
    df["n_q_head"] = shape["n_heads"]
    df["n_kv_head"] = shape["n_kv_heads"]
    df["block_size"] = VIDUR_BLOCK_SIZE
    df["num_tensor_parallel_workers"] = 1
    return df


def network_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Placeholder collectives (Vidur reads them only at TP>1 or PP>1, but the files must exist)."""
    sizes = [2 ** k for k in range(10, 28)]
    ar = pd.DataFrame({"time_stats.all_reduce.median": 0.0, "num_workers": 1, "size": sizes,
                       "collective": "all_reduce", "devices_per_node": 1})
    sr = pd.DataFrame({"time_stats.send_recv.median": 0.0, "num_workers": 2, "size": sizes,
                       "collective": "send_recv", "devices_per_node": 2})
    return ar, sr


# ----------------------------------------------------------------------- Vidur's lookup, in Python
def _ceil_to(x: int, m: int) -> int:
    return -(-x // m) * m


def vidur_step_s(c: StepCoefficients, grid: Grid, prefill: Sequence[tuple[int, int]], decode_kv: Sequence[int],
                 *, token_op: str = "mlp", mlp: pd.DataFrame | None = None,
                 attn: pd.DataFrame | None = None) -> float:
    """Vidur's time of one iteration (seconds) for a batch of prefill chunks ``(chunk, kv_before)``
    and decoding sequences with KV lengths ``decode_kv`` (new token included), following its lookup
    rules (see the module docstring). With ``mlp``/``attn`` tables the values are read from their
    rows (what Vidur trains on); otherwise from the formulas."""
    g = grid.kv_granularity
    tokens = sum(p for p, _ in prefill) + len(decode_kv)
    t8 = _ceil_to(tokens, 8)
    per_layer = 0.0
    if mlp is not None:
        row = mlp.loc[mlp["num_tokens"] == t8]
        per_layer += float(sum(row[f"time_stats.{op}.median"].iloc[0] for op in MLP_OPS))
    else:
        per_layer += float(token_op_ms(c, t8, token_op)) + overhead_op_ms(c)
    if decode_kv:
        d = len(decode_kv)
        k = _ceil_to(int(np.mean(decode_kv)), g)
        if attn is not None:
            row = attn.loc[(attn["prefill_chunk_size"] == 0) & (attn["batch_size"] == d) & (attn["kv_cache_size"] == k)]
            per_layer += float(row["time_stats.attn_decode.median"].iloc[0])
        else:
            per_layer += float(attn_decode_ms(c, d, k, token_op))
    for p, before in prefill:
        k = _ceil_to(before + p, g)
        p32 = _ceil_to(p, 32)
        if attn is not None:
            row = attn.loc[(attn["prefill_chunk_size"] == p32) & (attn["kv_cache_size"] == k)]
            per_layer += float(row["time_stats.attn_prefill.median"].iloc[0])
        else:
            per_layer += float(attn_prefill_ms(c, k, p32, token_op))
    return per_layer * c.n_layers / 1e3


def our_step_s(c: StepCoefficients, prefill: Sequence[tuple[int, int]], decode_kv: Sequence[int]) -> float:
    """Our step model for the same batch (``core/profile.py``)."""
    P = sum(p for p, _ in prefill)
    A = sum(p * (before + p) for p, before in prefill)
    return (c.overhead_s + c.prefill_token_s * P + c.prefill_attn_s * A + c.decode_seq_s * len(decode_kv)
            + c.decode_ctx_s * sum(decode_kv) + float(c.linear_s(P + len(decode_kv))))


# ------------------------------------------------------------------------------ writing the cache
def _snapshot(root: Path, kind: str, repo: str, files: dict[str, pd.DataFrame], config: dict) -> None:
    """An HF-hub cache entry ``root/profiling_data/<kind>/datasets--org--name`` with one snapshot."""
    org, name = repo.split("/")
    base = root / "profiling_data" / kind / f"datasets--{org}--{name}"
    rev = "0" * 40
    snap = base / "snapshots" / rev
    snap.mkdir(parents=True, exist_ok=True)
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(rev)
    (snap / "config.json").write_text(json.dumps(config))
    for fname, df in files.items():
        df.to_csv(snap / fname, index=False, compression="xz")


def export_profile(profile, cache_dir: str | Path, grid: Grid = Grid(), *, token_op: str = "mlp",
                   device: str = "a100", network_device: str = "a100_dgx",
                   model_name: str = VIDUR_MODEL_NAME) -> dict:
    """Write Vidur's compute and network profiling datasets for ``profile`` under ``cache_dir``.

    Returns the dataset names to pass as ``--random_forrest_execution_time_predictor_config_
    {model,network}_profiling_dataset``. The compute dataset's name carries a hash of its content
    and of the grid, because Vidur keys its on-disk model/prediction cache by the dataset *name*
    (not its content): a changed profile must not reuse stale predictions.
    """
    c = StepCoefficients.from_profile(profile)
    m = profile.model
    shape = {"n_heads": m.n_heads, "n_kv_heads": m.n_kv_heads, "hidden_size": m.hidden_size,
             "intermediate_size": m.intermediate_size, "vocab_size": m.vocab_size}
    if profile.hardware.tp != 1:
        raise ValueError(f"profile {profile.name}: tp = {profile.hardware.tp}: the exporter writes TP1 rows only")
    mlp = mlp_table(c, shape, grid, token_op)
    attn = attention_table(c, shape, grid, token_op)
    lat = c.latency
    coefs = {k: v for k, v in c.__dict__.items() if k != "latency"}
    if lat is not None:
        coefs["linear"] = [lat.weight_s, lat.token_s, lat.overlap_p, lat.expert_weight_s, lat.experts,
                           lat.experts_per_token]
    key = json.dumps({"c": coefs, "grid": grid.__dict__, "shape": shape, "token_op": token_op, "v": 1},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in profile.name)
    compute = f"agentwatt/{safe}-{digest}"
    network = f"agentwatt/network-{network_device}"
    root = Path(cache_dir)
    _snapshot(root, "compute", compute, {"mlp.csv.xz": mlp, "attention.csv.xz": attn},
              {"model": model_name, "device_sku": device})
    ar, sr = network_tables()
    _snapshot(root, "network", network, {"all_reduce.csv.xz": ar, "send_recv.csv.xz": sr}, {"sku": network_device})
    return {"model_profiling_dataset": compute, "network_profiling_dataset": network, "coefficients": c,
            "grid": grid, "token_op": token_op}


# ----------------------------------------------------------------------------------------- trace
def write_vidur_trace(rows: Iterable[tuple[float, int, int]], path: str | Path, date: str = "2023-11-16") -> int:
    """Write ``(arrival_s, prompt_tokens, output_tokens)`` rows in Vidur 0.0.26's trace schema
    (``Date, Time, PromptTokenCount, CompletionTokenCount``; Time in seconds). Returns the row count."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("Date,Time,PromptTokenCount,CompletionTokenCount\n")
        for t, p, o in rows:
            f.write(f"{date},{t!r},{int(p)},{int(o)}\n")
            n += 1
    return n


def azure_rows(path: str | Path, max_tokens: int = 4096) -> list[tuple[float, int, int]]:
    """An Azure 2023 CSV read by our loader, capped at ``max_tokens`` as Vidur's replay caps it."""
    from agentwatt.traces.loaders import load_azure_2023
    out = []
    for s in load_azure_2023(path, max_tokens=max_tokens):
        call = s.llm_calls[0]
        out.append((s.arrival_s, call.prompt_tokens, call.output_tokens))
    return out


def relative_excess(c: StepCoefficients, grid: Grid, prefill, decode_kv, token_op: str = "mlp") -> float:
    """(Vidur − ours) / ours for one batch: the inflation from Vidur's rounding."""
    ours = our_step_s(c, prefill, decode_kv)
    return (vidur_step_s(c, grid, prefill, decode_kv, token_op=token_op) - ours) / ours if ours > 0 else math.nan
