"""The generated workloads against the seed paper's numbers (``docs/paper.md``).

Single-request latency is estimated without the simulator (``traces.estimate``): a step model whose
per-token time is the paper's own (the first release's Llama-3.1-8B / A100-40GB estimate, HBM
efficiency set so ShareGPT's mean is Table III's 4.23 s: ``calibrate/splitwise_reference.py``), so
that these tests check the workload generators and nothing else. The bundled profile, built from
other published measurements (vLLM ~0.6.0 on the same GPU), runs about 12 % slower per token than
the paper's vLLM 0.6.6 figure; that difference is reported by ``agentwatt paper``. One request alone, one prefill step for the uncached prompt +
one decode step per output token, tool latencies as drawn, parallel branches on the critical path.
Tolerances are stated at each assertion; sample sizes keep the sampling error well inside them.
"""
from __future__ import annotations

import numpy as np
import pytest

from agentwatt.calibrate.splitwise_reference import llama8b_a100_40gb
from agentwatt.traces.agents import make_agent
from agentwatt.traces.estimate import call_durations_s, single_request_latency_s
from agentwatt.traces.schema import LLMCall
from agentwatt.traces.stats import workload_stats

SEED = 2026
PROFILE = llama8b_a100_40gb().latency

# Table II (paper §1.2): which agent runs on which benchmark; CoT is the static baseline.
TOOL_AGENTS_NO_LATS = ("react-hotpotqa", "react-webshop", "react-math", "react-humaneval",
                       "reflexion-hotpotqa", "reflexion-webshop", "reflexion-math", "reflexion-humaneval",
                       "llmcompiler-hotpotqa", "llmcompiler-webshop")
LATS = ("lats-hotpotqa", "lats-webshop", "lats-math", "lats-humaneval")


def sessions_of(name: str, n: int, seed: int = SEED, **knobs) -> list:
    agent = make_agent(name, **knobs)
    rng = np.random.default_rng(seed)
    return [agent.session(rng, i, 0.0) for i in range(n)]


def mean_calls(name: str, n: int, **knobs) -> float:
    return float(np.mean([len(s.llm_calls) for s in sessions_of(name, n, **knobs)]))


def latencies(name: str, n: int, **knobs) -> np.ndarray:
    return np.array([single_request_latency_s(s, PROFILE) for s in sessions_of(name, n, **knobs)])


# --- LLM calls per request (paper §2.1, Fig. 4) ------------------------------------------------------

def test_cot_is_one_call():
    for name in ("cot-hotpotqa", "cot-math", "cot-humaneval"):
        assert mean_calls(name, 20) == 1.0  # [Q] "CoT performs only a single LLM inference per request"


def test_lats_hotpotqa_about_71_calls():
    """[Q] LATS: "an average of 71.0 LLM calls per request". Asserted ±15 % on HotpotQA at the default
    setting; the bars read "60+" on HotpotQA [S], so 71.0 is read as the four-benchmark average, which
    is asserted ±10 % too (HotpotQA, WebShop ~180 [S], MATH ≤ 36 and HumanEval ≤ 8 [F])."""
    hotpot = mean_calls("lats-hotpotqa", 400)
    assert hotpot == pytest.approx(71.0, rel=0.15)
    assert hotpot >= 60  # "60+" [S]
    per = {name: (hotpot if name == "lats-hotpotqa" else mean_calls(name, 100)) for name in LATS}
    assert np.mean(list(per.values())) == pytest.approx(71.0, rel=0.10)
    assert per["lats-webshop"] == pytest.approx(180, rel=0.15)
    assert per["lats-math"] <= 36 and per["lats-humaneval"] <= 8


def test_tool_agents_average_9_2_times_cot():
    """[Q] tool-augmented agents make "averaging 9.2 times more" LLM calls than CoT (1 call). Averaged,
    with equal weight, over the 10 Table II design points of ReAct, Reflexion and LLMCompiler (LATS is
    reported separately at 71.0 and would make a 9.2 average impossible). Tolerance ±10 %."""
    per = {name: mean_calls(name, 300) for name in TOOL_AGENTS_NO_LATS}
    assert np.mean(list(per.values())) == pytest.approx(9.2, rel=0.10)
    for name, calls in per.items():  # Fig. 4 axis bounds [F]
        if name.endswith("-math"):
            assert calls <= 36, name
        if name.endswith("-humaneval"):
            assert calls <= 8, name


# --- single-request latency (paper §2.2, Fig. 7; §2.6) -----------------------------------------------

@pytest.fixture(scope="module")
def single_request():
    return {"chatbot-sharegpt": latencies("chatbot-sharegpt", 3000),
            "react-hotpotqa": latencies("react-hotpotqa", 3000),
            "react-webshop": latencies("react-webshop", 3000)}


def test_p95_ordering_sharegpt_hotpotqa_webshop(single_request):
    """Fig. 7 [F]: p95 9.7 s (ShareGPT) < 20.7 s (ReAct-HotpotQA) < 50.8 s (ReAct-WebShop)."""
    p95 = {k: np.percentile(v, 95) for k, v in single_request.items()}
    assert p95["chatbot-sharegpt"] < p95["react-hotpotqa"] < p95["react-webshop"]
    assert p95["chatbot-sharegpt"] == pytest.approx(9.7, rel=0.10)
    assert p95["react-hotpotqa"] == pytest.approx(20.7, rel=0.10)
    assert p95["react-webshop"] == pytest.approx(50.8, rel=0.15)  # the looping tail: wider tolerance


def test_single_request_means(single_request):
    """Table III [Q] ShareGPT 4.23 s; §IV-C [Q] sequential ReAct mean 9.6 s (HotpotQA), 5.3 s (WebShop). ±10 %."""
    assert single_request["chatbot-sharegpt"].mean() == pytest.approx(4.23, rel=0.10)
    assert single_request["react-hotpotqa"].mean() == pytest.approx(9.6, rel=0.10)
    assert single_request["react-webshop"].mean() == pytest.approx(5.3, rel=0.10)


# --- tool time share (paper §2.2, §2.3) ----------------------------------------------------------------

def test_react_hotpotqa_is_tool_dominated():
    """The issue asked for ≈30 % on ReAct-HotpotQA, but 30.2 % is the paper's AVERAGE over agents and
    benchmarks; HotpotQA is "tool-dominated" [Q] with GPU idle "up to 54.5 %" [Q]. So: at least 45 %
    (≈ half, −5 pp) and at most 60 % (54.5 % + 5.5 pp). Share = tool latency sum / (tool sum +
    12.41 ms per output token + 0.151 ms per uncached prompt token), the bundled profile's per-token times."""
    share = workload_stats(sessions_of("react-hotpotqa", 2000), prefix_reuse=False)["tool_time_share"]
    assert 0.45 <= share <= 0.60
    assert share > 0.5  # "dominates"


def test_average_tool_share_is_30_percent():
    """[Q] averaged over agents and benchmarks, tool execution is 30.2 % of end-to-end latency. Our
    average over the 14 tool-agent design points of Table II, each the share of tool time in the
    summed single-request node times (HumanEval's test-writing LLM calls count as tool time there,
    as the paper's breakdown does: "long tool time", GPU busy [Q]). Tolerance ±5 pp absolute.
    WebShop (20 ms tools) and HumanEval pull the average down, HotpotQA and MATH up."""
    shares = []
    for name in TOOL_AGENTS_NO_LATS + LATS:
        tool = llm = 0.0
        for s in sessions_of(name, 60):
            for node, d in zip(s.nodes, call_durations_s(s, PROFILE)):
                if isinstance(node, LLMCall) and not node.prompt[0].key.endswith(":testgen"):
                    llm += d
                else:
                    tool += d
        shares.append(tool / (tool + llm))
    assert np.mean(shares) == pytest.approx(0.302, abs=0.05)


# --- test-time scaling (paper §2.7, §2.8) ------------------------------------------------------------

def test_iteration_budget_raises_p95_more_than_the_mean():
    """Fig. 14 [Q]: accuracy and mean latency saturate while p95 "continues to increase linearly",
    because "a small set of outlier tasks ... consume the full iteration budget". Same seed."""
    lat = {b: latencies("react-hotpotqa", 1500, iteration_budget=b) for b in (10, 15, 20)}
    mean = {b: v.mean() for b, v in lat.items()}
    p95 = {b: np.percentile(v, 95) for b, v in lat.items()}
    assert p95[20] - p95[10] > 3 * (mean[20] - mean[10]) > 0
    assert p95[20] - p95[15] == pytest.approx(p95[15] - p95[10], rel=0.25)  # linear in the budget


def test_lats_parallel_width_raises_concurrent_llm_work():
    """§2.8 [Q]: parallel scaling costs "more concurrent LLM requests", which "increases memory
    pressure". The evaluation calls of one expansion run together: per expansion there are n of them
    (Fig. 16(c): 1–16). A session's total LLM work need not rise with width: a narrow search runs
    many more iterations (traces/lats.py)."""
    evals = {n: np.mean([sum(c.prompt[0].key == "lats-hotpotqa:value" for c in s.llm_calls)
                         / sum(c.prompt[0].key == "lats-hotpotqa:sys:fewshot5" for c in s.llm_calls)
                         for s in sessions_of("lats-hotpotqa", 40, n_children=n)]) for n in (1, 4, 16)}
    assert evals == {1: 1.0, 4: 4.0, 16: 16.0}


def test_lats_fan_out_width_lowers_latency():
    """§2.8 [Q]: 1 → 16 children cut LATS latency by 196.3 s while raising accuracy by 14.4 pp. At the
    width sweep's budget (paper/scaling.py: 32 reflections, a Fig. 16(b) grid point) with the n samples
    served as parallel calls, the estimated mean latency falls by 196.3 s ± 25 % (150 sessions per
    point; the sampling error is ~±20 s) and the generator's accuracy rises by 14.4 pp ± 25 %; solvable
    and unsolved tasks both get faster (fewer rounds to the answer; the reflection budget spent sooner)."""
    from agentwatt.paper.scaling import WIDTH_REFLECTIONS
    knobs = {"sample_mode": "fan-out", "max_reflections": WIDTH_REFLECTIONS}
    lat = {n: latencies("lats-hotpotqa", 150, n_children=n, **knobs).mean() for n in (1, 16)}
    assert lat[1] - lat[16] == pytest.approx(196.3, rel=0.25)
    acc = {n: make_agent("lats-hotpotqa", n_children=n, **knobs).strategy.accuracy() for n in (1, 16)}
    assert 100 * (acc[16] - acc[1]) == pytest.approx(14.4, rel=0.25)
    for solvable in (0.0, 1.0):
        one = latencies("lats-hotpotqa", 30, n_children=1, solvable_fraction=solvable, **knobs).mean()
        sixteen = latencies("lats-hotpotqa", 30, n_children=16, solvable_fraction=solvable, **knobs).mean()
        assert sixteen < 0.6 * one


def test_lats_outcome_matches_the_sessions():
    """``Lats.outcome`` is the exact chain ``build`` samples: expected iterations (expansions) agree
    with the sessions' mean within sampling error."""
    for knobs in ({}, {"n_children": 16, "max_reflections": 8}):
        for solvable in (0.0, 1.0):
            strat = make_agent("lats-hotpotqa", solvable_fraction=solvable, **knobs).strategy
            got = np.mean([sum(c.prompt[0].key == "lats-hotpotqa:sys:fewshot5" for c in s.llm_calls)
                           for s in sessions_of("lats-hotpotqa", 300, solvable_fraction=solvable, **knobs)])
            assert got == pytest.approx(strat.outcome(bool(solvable))[1], rel=0.1)


def test_reflexion_latency_at_2_and_4_reflections():
    """§2.8 [Q]: Reflexion goes from 16.9 s to 25.6 s between its first two Fig. 16(a) points, read as
    2 and 4 maximum reflections. ±10 %."""
    assert latencies("reflexion-hotpotqa", 800, max_reflections=2).mean() == pytest.approx(16.9, rel=0.10)
    assert latencies("reflexion-hotpotqa", 800, max_reflections=4).mean() == pytest.approx(25.6, rel=0.10)


def test_fewer_fewshot_examples_more_latency():
    """Fig. 15 [Q]: "average latency decreases as more examples are added" (fewer steps)."""
    assert latencies("react-hotpotqa", 1000, fewshot=0).mean() > latencies("react-hotpotqa", 1000, fewshot=5).mean()


# --- context (paper §2.4) -------------------------------------------------------------------------------

def test_hotpotqa_context_starts_near_1000_and_grows_3_to_4x():
    st = workload_stats(sessions_of("react-hotpotqa", 1000), prefix_reuse=False)
    first = np.mean([s.llm_calls[0].prompt_tokens for s in sessions_of("react-hotpotqa", 200)])
    assert first == pytest.approx(1000, rel=0.15)  # [Q] "around 1,000 tokens"
    assert 3.0 <= st["context_growth"]["mean"] <= 4.0  # [Q] "increases to 3–4×"
    assert st["input_tokens_per_call"]["mean"] <= 2700  # Fig. 8 axis [F]
