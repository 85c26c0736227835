"""benchmarks/vidur_export.py: Vidur's per-iteration time rebuilt from the exported rows equals our
step model on Vidur's lookup grid, and the files Vidur reads are where and what it expects."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from agentwatt.core.profile import load_profile

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "vidur_export.py"


@pytest.fixture(scope="module")
def ve():
    spec = importlib.util.spec_from_file_location("vidur_export", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["vidur_export"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module", params=["bundled", "additive"])
def profile(request):
    """The bundled (smooth-roofline) profile and an additive one (the first release's estimate)."""
    if request.param == "additive":
        from agentwatt.calibrate.splitwise_reference import llama8b_a100_40gb
        return llama8b_a100_40gb()
    return load_profile("llama-3.1-8b_a100-40gb")


GRID_ARGS = dict(max_tokens=1024, max_batch=32, max_chunk=512, kv_granularity=16)

# (prefill chunks as (chunk, KV before it), decode KV lengths): all on Vidur's grid — batch tokens
# a multiple of 8, chunks a multiple of 32, every KV length (chunk included) a multiple of 16
ON_GRID = [
    ([], [512] * 8),                                   # decode only
    ([], [1008] * 24),
    ([(512, 0)], []),                                  # one full chunk, prefill only
    ([(480, 0)], [256] * 32),                          # a chunk beside 32 decodes
    ([(256, 512), (128, 64)], [160] * 8),              # two chunks (one with history) + decodes
]


@pytest.mark.parametrize("token_op", ["mlp", "attention"])
@pytest.mark.parametrize("prefill,decode", ON_GRID)
def test_rows_rebuild_our_step_time_on_grid(ve, profile, token_op, prefill, decode):
    c = ve.StepCoefficients.from_profile(profile)
    grid = ve.Grid(**GRID_ARGS)
    m = profile.model
    shape = {"n_heads": m.n_heads, "n_kv_heads": m.n_kv_heads, "hidden_size": m.hidden_size,
             "intermediate_size": m.intermediate_size, "vocab_size": m.vocab_size}
    mlp = ve.mlp_table(c, shape, grid, token_op)
    attn = ve.attention_table(c, shape, grid, token_op)
    from_rows = ve.vidur_step_s(c, grid, prefill, decode, token_op=token_op, mlp=mlp, attn=attn)
    ours = ve.our_step_s(c, prefill, decode)
    # and the profile's own step model, fed the same features
    P = sum(p for p, _ in prefill)
    A = sum(p * (b + p) for p, b in prefill)
    assert ours == pytest.approx(profile.latency.step_s(P, A, len(decode), sum(decode)), rel=1e-12)
    assert from_rows == pytest.approx(ours, rel=1e-9)
    assert ve.vidur_step_s(c, grid, prefill, decode, token_op=token_op) == pytest.approx(ours, rel=1e-9)


def test_off_grid_rounding_is_what_the_docstring_says(ve, profile):
    c = ve.StepCoefficients.from_profile(profile)
    grid = ve.Grid(**GRID_ARGS)
    lone = ([], [512])                                      # one decoding sequence
    excess_mlp = ve.vidur_step_s(c, grid, *lone, token_op="mlp") - ve.our_step_s(c, *lone)
    rounding = float(c.linear_s(8) - c.linear_s(1))   # the roofline term, looked up at 8 tokens too
    assert excess_mlp == pytest.approx(7 * c.token_s + rounding, rel=1e-9)   # charged as 8 tokens
    assert ve.vidur_step_s(c, grid, *lone, token_op="attention") == pytest.approx(ve.our_step_s(c, *lone) + rounding,
                                                                                  rel=1e-9)
    # a 100-token chunk is charged as 128 tokens when the token cost sits in attention
    part = ([(100, 0)], [])
    ex = ve.vidur_step_s(c, grid, *part, token_op="attention") - ve.our_step_s(c, *part)
    lin = float(c.linear_s(104) - c.linear_s(100))
    assert 28 * c.prefill_token_s + lin <= ex <= 28 * c.prefill_token_s + 128 * 128 * c.prefill_attn_s + lin + 1e-12
    # Vidur never charges less than our model (it rounds up)
    for token_op in ve.TOKEN_OPS:
        for batch in ([(37, 5)], [3, 77, 901]), ([(300, 1000)], [17] * 5):
            assert ve.relative_excess(c, grid, *batch, token_op=token_op) >= 0


def test_export_writes_vidur_cache_layout(ve, profile, tmp_path):
    grid = ve.Grid(**GRID_ARGS)
    a = ve.export_profile(profile, tmp_path, grid, token_op="attention")
    b = ve.export_profile(profile, tmp_path, grid, token_op="mlp")
    assert a["model_profiling_dataset"] != b["model_profiling_dataset"]   # Vidur caches by name
    org, name = a["model_profiling_dataset"].split("/")
    base = tmp_path / "profiling_data" / "compute" / f"datasets--{org}--{name}"
    rev = (base / "refs" / "main").read_text()
    snap = base / "snapshots" / rev
    assert json.loads((snap / "config.json").read_text()) == {"model": "meta-llama/Llama-3-8B", "device_sku": "a100"}
    mlp = pd.read_csv(snap / "mlp.csv.xz")
    attn = pd.read_csv(snap / "attention.csv.xz")
    for op in ve.MLP_OPS:
        assert f"time_stats.{op}.median" in mlp.columns
    assert list(mlp["num_tokens"]) == list(range(1, grid.max_tokens + 1))
    for col in ("prefill_chunk_size", "batch_size", "kv_cache_size", "time_stats.attn_prefill.median",
                "time_stats.attn_decode.median", "n_embd", "n_q_head", "n_kv_head", "block_size",
                "num_tensor_parallel_workers"):
        assert col in attn.columns
    assert (attn["block_size"] == 16).all()
    # the per-step overhead is charged once per iteration: L layers x (overhead / L)
    m = profile.model
    assert mlp["time_stats.add.median"].iloc[0] * m.n_layers / 1e3 == pytest.approx(profile.latency.overhead_s)
    net = tmp_path / "profiling_data" / "network"
    assert len(list(net.glob("datasets--*/snapshots/*/all_reduce.csv.xz"))) == 1
    assert len(list(net.glob("datasets--*/snapshots/*/send_recv.csv.xz"))) == 1


def test_trace_in_vidur_schema_reads_back_in_ours(ve, tmp_path):
    from agentwatt.traces.loaders import load_trace
    rows = [(0.0, 374, 44), (4.314579, 396, 109), (10.5, 4000, 200)]
    capped = [(t, min(p, 4096 - o), o) for t, p, o in rows]
    path = tmp_path / "t.csv"
    assert ve.write_vidur_trace(capped, path) == 3
    assert path.read_text().splitlines()[0] == "Date,Time,PromptTokenCount,CompletionTokenCount"
    back = [(s.arrival_s, s.llm_calls[0].prompt_tokens, s.llm_calls[0].output_tokens)
            for s in load_trace("vidur-csv", path)]
    assert back == capped
