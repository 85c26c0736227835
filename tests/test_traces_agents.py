"""Agent generators: structure of every session, and the paper's numbers recovered from samples."""
from __future__ import annotations

import math

import numpy as np
import pytest

from agentwatt.errors import InputError
from agentwatt.traces.agents import AGENTS, ChatbotShareGPT, ReactHotpotQA, generate_sessions, make_agent
from agentwatt.traces.sampling import lognormal_sigma_from_p95_over_mean
from agentwatt.traces.schema import LLMCall, Segment, ToolCall, validate_session

SEED = 20260604


def react_sessions(n: int, seed: int = SEED, **knobs) -> list:
    agent = make_agent("react-hotpotqa", **knobs)
    rng = np.random.default_rng(seed)
    return [agent.session(rng, i, float(i)) for i in range(n)]


@pytest.fixture(scope="module")
def react2000() -> list:
    return react_sessions(2000)


# --- ReAct structure ----------------------------------------------------------------------------

def test_react_sessions_are_valid(react2000):
    for s in react2000:
        assert validate_session(s) is s
        assert s.agent == "react-hotpotqa"


def test_react_closed_loop_structure(react2000):
    for s in react2000:
        llm, tools = s.llm_calls, s.tool_calls
        assert len(tools) == len(llm) - 1
        for node in s.nodes:  # LLM call k is node 2k, its tool node 2k+1, each depends on the one before
            assert isinstance(node, LLMCall if node.id % 2 == 0 else ToolCall)
            assert node.deps == ((node.id - 1,) if node.id else ())
        assert isinstance(s.nodes[-1], LLMCall)  # the Finish call closes the session
        assert all(t.tool == "wikipedia" for t in tools)


def test_react_prompt_grows_by_output_and_observation(react2000):
    for s in react2000:
        llm = s.llm_calls
        assert llm[0].prompt[0] == Segment("react-hotpotqa:sys:fewshot5", 900)
        assert llm[0].prompt[1].key == f"s{s.id}:q"
        for prev, call in zip(llm, llm[1:]):
            k = len(prev.prompt)
            assert call.prompt[:k] == prev.prompt  # prefix property: prefix caching can reuse the whole prompt
            assert call.prompt[k] == prev.output_segment == Segment(f"s{s.id}:o{prev.id}", prev.output_tokens)
            assert call.prompt[k + 1].key == f"s{s.id}:t{prev.id + 1}"
            assert len(call.prompt) == k + 2


def test_react_keys_unique_within_session(react2000):
    for s in react2000:
        keys = [seg.key for seg in s.llm_calls[-1].prompt] + [s.llm_calls[-1].output_key]
        assert len(keys) == len(set(keys))


def test_react_deterministic_for_a_seed():
    assert react_sessions(200, seed=7) == react_sessions(200, seed=7)
    assert react_sessions(200, seed=7) != react_sessions(200, seed=8)


# --- ReAct numbers (paper §1.2, §2.2, §2.4) -----------------------------------------------------

def test_react_mean_llm_calls_is_five(react2000):
    n = np.array([len(s.llm_calls) for s in react2000])
    assert n.mean() == pytest.approx(5.0, rel=0.10)
    assert n.min() >= 2 and n.max() <= 15


def test_react_first_input_is_about_1000_tokens(react2000):
    first = np.array([s.llm_calls[0].prompt_tokens for s in react2000])
    assert first.mean() == pytest.approx(1000.0, rel=0.15)


def test_react_context_grows_3_to_4x_over_five_calls(react2000):
    """Paper §2.4: inputs start near 1,000 tokens and grow 3-4x. Asserted on the 5th call (the
    mean session has 5 calls) of every session with at least 5 calls; longer sessions keep
    growing past that (about 630 tokens per iteration)."""
    ratios = [s.llm_calls[4].prompt_tokens / s.llm_calls[0].prompt_tokens
              for s in react2000 if len(s.llm_calls) >= 5]
    assert len(ratios) > 500
    assert 3.0 <= np.mean(ratios) <= 4.0


def test_react_tool_latency_mean_is_1_2_s(react2000):
    lat = np.array([t.latency_s for s in react2000 for t in s.tool_calls])
    assert lat.mean() == pytest.approx(1.2, rel=0.05)
    assert (lat > 0).all()


def test_react_latency_proxy_matches_paper_mean_and_tail(react2000):
    """Sequential latency proxy: 12 ms per output token (8B on an A100) + tool latencies.
    Paper §2.2: mean 9.6 s, p95 20.7 s, p95/mean 2.16."""
    lat = np.array([sum(0.012 * c.output_tokens for c in s.llm_calls) + sum(t.latency_s for t in s.tool_calls)
                    for s in react2000])
    assert lat.mean() == pytest.approx(9.6, rel=0.08)
    assert np.percentile(lat, 95) / lat.mean() == pytest.approx(2.16, rel=0.10)


# --- ReAct knobs --------------------------------------------------------------------------------

def test_iteration_budget_caps_llm_calls():
    for budget in (1, 3, 6):
        sessions = react_sessions(300, iteration_budget=budget)
        counts = [len(s.llm_calls) for s in sessions]
        assert max(counts) == budget
        assert all(len(s.tool_calls) == len(s.llm_calls) - 1 for s in sessions)
    single = react_sessions(5, iteration_budget=1)
    assert all(len(s.nodes) == 1 for s in single)


def test_stuck_fraction_one_runs_the_whole_budget():
    sessions = react_sessions(50, iteration_budget=8, stuck_fraction=1.0)
    assert {len(s.llm_calls) for s in sessions} == {8}


def test_fewshot_sets_the_shared_segment():
    for k, tokens in ((0, 150), (2, 450), (5, 900)):
        seg = make_agent("react-hotpotqa", fewshot=k).shared_prefix
        assert seg == Segment(f"react-hotpotqa:sys:fewshot{k}", tokens)
    sessions = react_sessions(20, fewshot=3)
    assert {s.nodes[0].prompt[0] for s in sessions} == {Segment("react-hotpotqa:sys:fewshot3", 600)}


# --- chatbot ------------------------------------------------------------------------------------

def test_chatbot_sessions_and_means():
    """Means within 5 % of ShareGPT's 161.31 / 337.99 (vLLM paper). Clipping at 4,096 tokens
    lowers the input mean by about 0.3 %, well inside the tolerance."""
    agent = make_agent("chatbot-sharegpt")
    rng = np.random.default_rng(SEED)
    sessions = [agent.session(rng, i, 0.0) for i in range(20_000)]
    for s in sessions[:500]:
        validate_session(s)
        assert len(s.nodes) == 1 and s.tool_calls == []
        assert s.nodes[0].prompt == (Segment(f"s{s.id}:q", s.nodes[0].prompt_tokens),)
        assert s.nodes[0].output_key == f"s{s.id}:o0"
    inp = np.array([s.nodes[0].prompt_tokens for s in sessions])
    out = np.array([s.nodes[0].output_tokens for s in sessions])
    assert inp.mean() == pytest.approx(161.31, rel=0.05)
    assert out.mean() == pytest.approx(337.99, rel=0.05)
    assert inp.min() >= 1 and inp.max() <= 4096 and out.min() >= 1 and out.max() <= 4096
    assert np.percentile(out, 95) / out.mean() == pytest.approx(9.7 / 4.23, rel=0.05)


def test_chatbot_output_sigma_derivation():
    """Paper §2.2/§2.9: p95 9.7 s over mean 4.23 s → sigma 0.62."""
    sigma = lognormal_sigma_from_p95_over_mean(9.7 / 4.23)
    assert sigma == pytest.approx(0.622, abs=0.001)
    assert ChatbotShareGPT().output_sigma == pytest.approx(sigma, abs=0.005)
    mu = 0.0  # check the closed form it solves
    assert math.exp(mu + 1.6448536 * sigma) / math.exp(mu + sigma ** 2 / 2) == pytest.approx(9.7 / 4.23, rel=1e-6)


# --- registry -----------------------------------------------------------------------------------

def test_registry_names():
    assert set(AGENTS) == {"chatbot-sharegpt", "react-hotpotqa"}
    assert isinstance(make_agent("react-hotpotqa"), ReactHotpotQA)
    assert make_agent("react-hotpotqa", iteration_budget=5).iteration_budget == 5


def test_make_agent_unknown_name_lists_valid_names():
    with pytest.raises(InputError) as e:
        make_agent("reflexion")
    assert str(e.value) == "agent 'reflexion': unknown agent: expected one of chatbot-sharegpt, react-hotpotqa"


def test_make_agent_unknown_knob_lists_valid_knobs():
    with pytest.raises(InputError) as e:
        make_agent("react-hotpotqa", budget=3)
    msg = str(e.value)
    assert msg.startswith("agent react-hotpotqa: unknown knob budget: expected one of iteration_budget, fewshot, ")


@pytest.mark.parametrize("knobs, message", [
    ({"iteration_budget": 0}, "agent react-hotpotqa: iteration_budget = 0: expected an integer >= 1"),
    ({"fewshot": -1}, "agent react-hotpotqa: fewshot = -1: expected an integer >= 0"),
    ({"fewshot": 2.5}, "agent react-hotpotqa: fewshot = 2.5: expected an integer >= 0"),
    ({"stuck_fraction": 1.5}, "agent react-hotpotqa: stuck_fraction = 1.5: expected a probability in [0, 1]"),
    ({"tool_latency_mean_s": 0}, "agent react-hotpotqa: tool_latency_mean_s = 0: expected a finite number > 0"),
    ({"output_sigma": float("nan")}, "agent react-hotpotqa: output_sigma = nan: expected a lognormal sigma in [0, 3]"),
])
def test_make_agent_bad_values(knobs, message):
    with pytest.raises(InputError) as e:
        make_agent("react-hotpotqa", **knobs)
    assert str(e.value) == message


def test_generate_sessions_streams_with_ids():
    agent = make_agent("chatbot-sharegpt")
    stream = generate_sessions(agent, np.random.default_rng(1), iter([0.0, 0.5, 2.0]), first_id=10)
    assert iter(stream) is stream
    sessions = list(stream)
    assert [(s.id, s.arrival_s) for s in sessions] == [(10, 0.0), (11, 0.5), (12, 2.0)]
