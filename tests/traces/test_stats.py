"""Workload statistics, the single-request latency estimate, and the ``workload stats`` command."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agentwatt.core.profile import LatencyModel, load_profile
from agentwatt.core.errors import InputError
from agentwatt.cli.workload import parse_knob, workload_cmd
from agentwatt.traces.estimate import critical_path_s, llm_call_s, single_request_latency_s
from agentwatt.traces.schema import LLMCall, Segment, Session, ToolCall
from agentwatt.traces.stats import format_stats, workload_stats

MODEL = LatencyModel(overhead_s=0.01, prefill_token_s=0.001, prefill_attn_s=0.0, decode_seq_s=0.002,
                     decode_ctx_s=0.0)  # round numbers: a prefill token 1 ms, a decode step 12 ms


def two_sessions() -> list[Session]:
    sys_ = Segment("agent:sys", 32)
    c0 = LLMCall(id=0, prompt=(sys_, Segment("s0:q", 16)), output_tokens=16, output_key="s0:o0")
    t1 = ToolCall(id=1, tool="search", latency_s=2.0, deps=(0,))
    c2 = LLMCall(id=2, prompt=(sys_, Segment("s0:q", 16), c0.output_segment, Segment("s0:t1", 32)),
                 output_tokens=8, output_key="s0:o2", deps=(1,))
    a = Session(id=0, agent="x", arrival_s=0.0, nodes=(c0, t1, c2))
    d0 = LLMCall(id=0, prompt=(sys_, Segment("s1:q", 32)), output_tokens=4, output_key="s1:o0")
    b = Session(id=1, agent="x", arrival_s=10.0, nodes=(d0,))
    return [a, b]


def test_workload_stats_exact_numbers():
    st = workload_stats(two_sessions(), s_per_output_token=0.01, s_per_prompt_token=0.001)
    assert st["sessions"] == 2 and st["agents"] == {"x": 2}
    assert st["llm_calls_per_session"]["mean"] == 1.5 and st["tool_calls_per_session"]["max"] == 1
    assert st["input_tokens_per_call"]["mean"] == pytest.approx((48 + 96 + 64) / 3)
    assert st["output_tokens_per_call"]["mean"] == pytest.approx(28 / 3)
    assert st["context_growth"] == {"n": 1, "mean": 2.0, "p50": 2.0, "p95": 2.0, "max": 2.0}
    # LLM time: outputs 28 × 10 ms; prompt tokens not cached earlier in the same session: 48 + (96 − 64) + 64
    assert st["tool_time_share"] == pytest.approx(2.0 / (2.0 + 0.28 + 0.144))
    # prefix reuse, 16-token blocks: call 2 reuses sys+q+o0 (64 of 96), session 1 reuses sys (32 of 64)
    assert st["prefix_reuse"] == pytest.approx((64 + 32) / (48 + 96 + 64))
    assert st["arrivals"] == {"span_s": 10.0, "rate_per_s": 0.1, "interarrival_cv": 0.0}
    assert "single_request_latency_s" not in st
    json.dumps(st, allow_nan=False)  # JSON-ready


def test_workload_stats_options():
    st = workload_stats(two_sessions(), prefix_reuse=False, latency_model=MODEL)
    assert st["prefix_reuse"] is None
    assert st["single_request_latency_s"]["n"] == 2
    text = format_stats(st, "title")
    assert text.splitlines()[0] == "title" and "single-request latency s" in text
    assert "prefix reuse potential: not computed" in text
    assert workload_stats([])["sessions"] == 0


def test_llm_call_time_closed_form():
    prof = load_profile("llama-3.1-8b_a100-40gb").latency
    prompt, cached, out = 1000, 600, 50
    steps = prof.step_s(400, 400 * 1000, 0, 0) + sum(prof.step_s(0, 0, 1, prompt + k) for k in range(1, out + 1))
    assert llm_call_s(prof, prompt, cached, out) == pytest.approx(steps, rel=1e-12)
    assert llm_call_s(prof, 100, 100, 1) == pytest.approx(prof.step_s(1, 100, 0, 0) + prof.step_s(0, 0, 1, 101))


def test_single_request_latency_critical_path_and_caching():
    a, _ = two_sessions()
    # call 0: prefill 48 → 0.058 s, decode 16 × 12 ms; tool 2 s; call 2: 96 − 64 cached = 32 new → 0.042, 8 × 12 ms
    expected = (0.01 + 0.048 + 16 * 0.012) + 2.0 + (0.01 + 0.032 + 8 * 0.012)
    assert single_request_latency_s(a, MODEL) == pytest.approx(expected)
    assert single_request_latency_s(a, MODEL, prefix_caching=False) == pytest.approx(expected + 0.064)
    par = Session(id=0, agent="x", arrival_s=0.0, nodes=(
        ToolCall(id=0, tool="a", latency_s=1.0), ToolCall(id=1, tool="b", latency_s=3.0),
        ToolCall(id=2, tool="c", latency_s=0.5, deps=(0, 1))))
    assert critical_path_s(par, [1.0, 3.0, 0.5]) == 3.5  # parallel branches overlap


# --- CLI --------------------------------------------------------------------------------------------

def test_parse_knob_types():
    assert parse_knob("iteration_budget=20") == ("iteration_budget", 20)
    assert parse_knob("stuck_fraction=0.1") == ("stuck_fraction", 0.1)
    assert parse_knob("test_generation=false") == ("test_generation", False)
    assert parse_knob("sample_mode=fan-out") == ("sample_mode", "fan-out")
    with pytest.raises(InputError, match=r"--knob 'budget': expected K=V"):
        parse_knob("budget")


def test_cli_stats_agent_with_knob_and_json(tmp_path):
    out = tmp_path / "sub" / "stats.json"
    res = CliRunner().invoke(workload_cmd, ["stats", "react-hotpotqa", "-n", "50", "--seed", "3",
                                            "--knob", "iteration_budget=4", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "agent react-hotpotqa (50 sessions, seed 3, iteration_budget=4)" in res.output
    assert "LLM calls / session" in res.output and "tool time share" in res.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["source"]["knobs"] == {"iteration_budget": 4}
    assert data["stats"]["llm_calls_per_session"]["max"] == 4
    assert not list(out.parent.glob(".*.tmp"))  # written atomically: no temp file left


def test_cli_stats_bundled_trace_and_path(tmp_path):
    res = CliRunner().invoke(workload_cmd, ["stats", "tracelab-example", "--no-latency"])
    assert res.exit_code == 0, res.output
    assert "sessions: 2  [tracelab (2)]" in res.output
    p = tmp_path / "v.csv"
    p.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,2\n1,20,3\n", encoding="utf-8")
    res = CliRunner().invoke(workload_cmd, ["stats", str(p), "--format", "vidur-csv"])
    assert res.exit_code == 0, res.output
    assert "arrivals: 1 /s over 1.0 s" in res.output


@pytest.mark.parametrize("args, message", [
    (["stats", "nothing-here"], "error: nothing-here: not an agent, a bundled trace or a file: expected an agent ("),
    (["stats", "react-hotpotqa", "--knob", "budget=3"], "error: agent react-hotpotqa: unknown knob budget: expected "),
    (["stats", "tracelab-example", "--knob", "x=1"], "error: tracelab-example: --knob is for agents: expected "),
    (["stats", "react-hotpotqa", "--limit", "3"], "error: react-hotpotqa: --format/--limit/--max-tokens are for "),
])
def test_cli_errors_are_one_line(args, message):
    res = CliRunner().invoke(workload_cmd, args)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)


def test_cli_path_needs_format(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text("{}\n", encoding="utf-8")
    res = CliRunner().invoke(workload_cmd, ["stats", str(p)])
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: {p}: --format missing: expected one of azure-2023, claude-code, "
                                  f"mooncake, tracelab, vidur-csv")
    res = CliRunner().invoke(workload_cmd, ["stats", str(p), "--format", "mooncake"])
    assert res.exit_code == 2 and "line 1: timestamp missing: expected a number >= 0" in res.output
