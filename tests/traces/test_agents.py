"""Agent generators: structure of every session, knobs that change the DAG, parameter checks.

The paper's numbers recovered from samples (calls per request, latencies, tool share) are in
``tests/traces/test_workload_paper.py``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from agentwatt.core.errors import InputError
from agentwatt.traces.agents import AGENTS, ChatbotShareGPT, TaskAgent, agent_knobs, generate_sessions, make_agent
from agentwatt.traces.sampling import lognormal_sigma_from_p95_over_mean
from agentwatt.traces.schema import LLMCall, Segment, ToolCall, validate_session

SEED = 20260604
GENERATED = sorted(n for n in AGENTS if n != "synthetic-fixed")


def sessions_of(name: str, n: int, seed: int = SEED, **knobs) -> list:
    agent = make_agent(name, **knobs)
    rng = np.random.default_rng(seed)
    return [agent.session(rng, i, float(i)) for i in range(n)]


@pytest.fixture(scope="module")
def react2000() -> list:
    return sessions_of("react-hotpotqa", 2000)


def parallel_groups(s) -> list[list[int]]:
    """Nodes that share the same dependency tuple (siblings that run in parallel)."""
    by_deps: dict[tuple, list[int]] = {}
    for node in s.nodes:
        if node.deps:
            by_deps.setdefault(node.deps, []).append(node.id)
    return [g for g in by_deps.values() if len(g) > 1]


# --- every generator ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", GENERATED)
def test_every_agent_makes_valid_deterministic_sessions(name):
    a = sessions_of(name, 20, seed=7)
    assert a == sessions_of(name, 20, seed=7)
    assert a != sessions_of(name, 20, seed=8)
    for s in a:
        assert validate_session(s) is s
        assert s.agent == name
        assert all(c.output_key == f"s{s.id}:o{c.id}" for c in s.llm_calls)


@pytest.mark.parametrize("name", GENERATED)
def test_session_keys_are_session_private_or_shared_blocks(name):
    for s in sessions_of(name, 20, seed=3):
        for c in s.llm_calls:
            for seg in c.prompt:
                private = seg.key.startswith(f"s{s.id}:")
                shared = seg.key.startswith(f"{name}:")
                assert private or shared, seg.key


def test_cot_is_one_call_without_tools():
    for name in ("cot-hotpotqa", "cot-math", "cot-humaneval"):
        for s in sessions_of(name, 50):
            assert len(s.nodes) == 1 and isinstance(s.nodes[0], LLMCall)
            assert s.nodes[0].prompt[0].key == f"{name}:sys:fewshot{make_agent(name).task.fewshot}"


# --- ReAct ----------------------------------------------------------------------------------------

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


def test_react_first_input_is_about_1000_tokens(react2000):
    first = np.array([s.llm_calls[0].prompt_tokens for s in react2000])
    assert first.mean() == pytest.approx(1000.0, rel=0.15)


def test_react_context_grows_3_to_4x_over_five_calls(react2000):
    """Paper §2.4: inputs start near 1,000 tokens and grow 3-4x. Asserted on the 5th call (the
    mean session has 5 calls) of every session with at least 5 calls."""
    ratios = [s.llm_calls[4].prompt_tokens / s.llm_calls[0].prompt_tokens
              for s in react2000 if len(s.llm_calls) >= 5]
    assert len(ratios) > 500
    assert 3.0 <= np.mean(ratios) <= 4.0


def test_react_tool_latency_mean_is_1_2_s(react2000):
    lat = np.array([t.latency_s for s in react2000 for t in s.tool_calls])
    assert lat.mean() == pytest.approx(1.2, rel=0.05)
    assert (lat > 0).all()


def test_iteration_budget_caps_llm_calls():
    for budget in (1, 3, 6):
        sessions = sessions_of("react-hotpotqa", 300, iteration_budget=budget)
        counts = [len(s.llm_calls) for s in sessions]
        assert max(counts) == budget
        assert all(len(s.tool_calls) == len(s.llm_calls) - 1 for s in sessions)
    assert all(len(s.nodes) == 1 for s in sessions_of("react-hotpotqa", 5, iteration_budget=1))


def test_stuck_fraction_runs_the_whole_budget():
    assert {len(s.llm_calls) for s in sessions_of("react-hotpotqa", 50, iteration_budget=8, stuck_fraction=1.0)} == {8}
    calls = [len(s.llm_calls) for s in sessions_of("react-hotpotqa", 2000)]
    share_at_budget = np.mean(np.array(calls) == 10)
    assert 0.07 <= share_at_budget <= 0.15  # the 7 % looping tasks plus the tail that reaches the budget anyway


def test_stuck_output_scale_lengthens_looping_steps():
    base = sessions_of("react-webshop", 300, stuck_fraction=1.0, stuck_output_scale=1.0)
    long = sessions_of("react-webshop", 300, stuck_fraction=1.0, stuck_output_scale=3.0)
    mean = lambda ss: np.mean([c.output_tokens for s in ss for c in s.llm_calls])  # noqa: E731
    assert mean(long) == pytest.approx(3 * mean(base), rel=0.1)


def test_fewshot_sets_the_shared_segment_and_fewer_shots_mean_more_steps():
    for k, tokens in ((0, 150), (2, 450), (5, 900)):
        assert make_agent("react-hotpotqa", fewshot=k).shared_prefix == Segment(f"react-hotpotqa:sys:fewshot{k}",
                                                                                tokens)
    sessions = sessions_of("react-hotpotqa", 20, fewshot=3)
    assert {s.nodes[0].prompt[0] for s in sessions} == {Segment("react-hotpotqa:sys:fewshot3", 600)}
    # paper Fig. 15: fewer examples, more reasoning steps (0.3 more per missing example, an assumption)
    zero = np.mean([len(s.llm_calls) for s in sessions_of("react-hotpotqa", 2000, fewshot=0)])
    five = np.mean([len(s.llm_calls) for s in sessions_of("react-hotpotqa", 2000, fewshot=5)])
    assert zero > five + 0.7


def test_humaneval_test_writing_is_an_llm_call():
    for name in ("react-humaneval", "reflexion-humaneval", "lats-humaneval"):
        for s in sessions_of(name, 100):
            testgen = [c for c in s.llm_calls if c.prompt[0].key == f"{name}:testgen"]
            assert len(testgen) <= 1
            if s.tool_calls:  # tests are written (on the GPU) before the first execution
                assert len(testgen) == 1
                first_tool = s.tool_calls[0]
                assert testgen[0].id < first_tool.id
                assert all(t.tool == "python-exec" for t in s.tool_calls)


def test_math_uses_two_tools():
    tools = [t.tool for s in sessions_of("react-math", 300) for t in s.tool_calls]
    share = tools.count("python-calculator") / len(tools)
    assert set(tools) == {"wolfram-alpha", "python-calculator"}
    assert share == pytest.approx(0.4, abs=0.05)


def test_tool_latency_scale_multiplies_tool_time():
    base = sessions_of("react-hotpotqa", 200)
    slow = sessions_of("react-hotpotqa", 200, tool_latency_scale=2.0)
    for a, b in zip(base, slow):
        assert [2 * t.latency_s for t in a.tool_calls] == pytest.approx([t.latency_s for t in b.tool_calls])


# --- Reflexion ------------------------------------------------------------------------------------

def test_reflexion_trials_reflections_and_prompts():
    agent = make_agent("reflexion-hotpotqa", max_reflections=3)
    rng = np.random.default_rng(SEED)
    seen_reflected = 0
    for i in range(300):
        s = agent.session(rng, i, 0.0)
        reflections = [c for c in s.llm_calls if c.prompt[0].key == "reflexion-hotpotqa:reflect"]
        assert len(reflections) <= 3
        for r in reflections:
            later = [c for c in s.llm_calls if c.id > r.id and c.prompt[0].key.endswith(":sys:fewshot5")]
            if later:  # the next trial's prompt: [sys][q][reflections so far][last trial][current]
                nxt = later[0]
                assert nxt.deps == (r.id,)
                assert r.output_segment in nxt.prompt
                assert nxt.prompt[:2] == (Segment("reflexion-hotpotqa:sys:fewshot5", 900), nxt.prompt[1])
                seen_reflected += 1
    assert seen_reflected > 100


def test_reflexion_more_reflections_longer_tail():
    calls = {r: np.array([len(s.llm_calls) for s in sessions_of("reflexion-hotpotqa", 200, max_reflections=r)])
             for r in (2, 8, 32)}
    assert np.percentile(calls[2], 95) < np.percentile(calls[8], 95) < np.percentile(calls[32], 95)
    # unsolvable tasks use every trial: the max grows with the cap
    assert calls[32].max() > 4 * calls[2].max()


def test_reflexion_solvable_tasks_stop_early():
    always = sessions_of("reflexion-hotpotqa", 200, solvable_fraction=1.0, trial_success_prob=1.0)
    assert all(not any(c.prompt[0].key == "reflexion-hotpotqa:reflect" for c in s.llm_calls) for s in always)


# --- LATS ---------------------------------------------------------------------------------------

def test_lats_fan_out_join_and_shared_prefixes():
    for s in sessions_of("lats-hotpotqa", 100, n_children=4):
        groups = parallel_groups(s)
        assert groups, "an expansion's children run in parallel"
        tools = s.tool_calls
        assert len(tools) % 4 == 0
        evals = [c for c in s.llm_calls if c.prompt[0].key == "lats-hotpotqa:value"]
        assert len(evals) == len(tools)
        for e in evals:  # an evaluation reads [value instruction][question][path][child action][observation]
            assert e.prompt[1].key == f"s{s.id}:q"
        expansions = [c for c in s.llm_calls if c.prompt[0].key == "lats-hotpotqa:sys:fewshot5"]
        for x in expansions:
            kids = [t for t in tools if t.deps == (x.id,)]
            assert len(kids) == 4  # one call, 4 samples, 4 parallel tools
            sibling_evals = [e for e in evals if e.deps[0] in {t.id for t in kids}]
            heads = {e.prompt[:-2] for e in sibling_evals}
            assert len(heads) == 1  # siblings share the [value][question][path] prefix


def test_lats_context_is_the_path_only():
    """Paper §2.4: the input holds only the root-to-node path, so no prompt carries more than
    max_depth observations (path of at most max_depth - 1 steps + the child being evaluated)."""
    for depth in (2, 4):
        most = max(sum(1 for g in c.prompt if g.key.startswith(f"s{s.id}:t"))
                   for s in sessions_of("lats-hotpotqa", 100, max_depth=depth) for c in s.llm_calls)
        assert most == depth


def test_lats_expansion_output_is_n_samples():
    one = np.mean([c.output_tokens for s in sessions_of("lats-hotpotqa", 80, n_children=1) for c in s.llm_calls
                   if c.prompt[0].key.endswith(":sys:fewshot5")])
    eight = np.mean([c.output_tokens for s in sessions_of("lats-hotpotqa", 80, n_children=8) for c in s.llm_calls
                     if c.prompt[0].key.endswith(":sys:fewshot5")])
    assert eight == pytest.approx(8 * one, rel=0.1)  # paper §2.4: LATS's per-call output is "much longer"


def test_lats_fan_out_mode_makes_parallel_sample_calls():
    for s in sessions_of("lats-hotpotqa", 50, n_children=3, sample_mode="fan-out"):
        samples = [c for c in s.llm_calls if c.prompt[0].key.endswith(":sys:fewshot5")]
        assert len(samples) % 3 == 0
        for k in range(0, len(samples), 3):
            trio = samples[k:k + 3]
            assert len({c.prompt for c in trio}) == 1 and len({c.deps for c in trio}) == 1


def test_lats_width_changes_the_dag():
    narrow = sessions_of("lats-hotpotqa", 100, n_children=1)
    wide = sessions_of("lats-hotpotqa", 100, n_children=16)
    assert max(len(g) for s in wide for g in parallel_groups(s)) == 16
    assert all(not parallel_groups(s) or max(len(g) for g in parallel_groups(s)) == 1 for s in narrow)


# --- LLMCompiler ----------------------------------------------------------------------------------

def test_llmcompiler_plan_parallel_tools_join():
    replans = 0
    for s in sessions_of("llmcompiler-hotpotqa", 300):
        planners = [c for c in s.llm_calls if c.prompt[0].key == "llmcompiler-hotpotqa:sys:fewshot5"]
        joiners = [c for c in s.llm_calls if c.prompt[0].key == "llmcompiler-hotpotqa:joiner"]
        assert len(planners) == len(joiners) >= 1 and len(planners) <= 3
        replans += len(planners) - 1
        for p, j in zip(planners, joiners):
            tools = [t for t in s.tool_calls if p.id in t.deps]
            assert tools and set(j.deps) == {t.id for t in tools}  # the joiner waits for every planned call
            assert p.output_segment in j.prompt
    assert 0.2 * 300 < replans < 0.45 * 300  # replan_prob 0.25 with at most 2 replans: 0.25 + 0.0625 per session


def test_llmcompiler_has_parallel_tools():
    assert any(parallel_groups(s) for s in sessions_of("llmcompiler-hotpotqa", 50))


# --- self-consistency -------------------------------------------------------------------------------

def test_self_consistency_samples_share_the_prompt_and_stop_early():
    for s in sessions_of("sc-hotpotqa", 50, n_samples=8):
        assert len(s.llm_calls) == 8 and len({c.prompt for c in s.llm_calls}) == 1
        assert all(c.deps == () for c in s.llm_calls)
    waves = [len(s.llm_calls) for s in sessions_of("sc-hotpotqa", 400, n_samples=8, wave_size=2, agree_prob=0.5)]
    assert min(waves) == 2 and max(waves) == 8
    assert np.mean(waves) == pytest.approx(2 * (1 + 0.5 + 0.25 + 0.125), rel=0.1)


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
    inp = np.array([s.nodes[0].prompt_tokens for s in sessions])
    out = np.array([s.nodes[0].output_tokens for s in sessions])
    assert inp.mean() == pytest.approx(161.31, rel=0.05)
    assert out.mean() == pytest.approx(337.99, rel=0.05)
    assert np.percentile(out, 95) / out.mean() == pytest.approx(9.7 / 4.23, rel=0.05)


def test_chatbot_output_sigma_derivation():
    """Paper §2.2/§2.9: p95 9.7 s over mean 4.23 s → sigma 0.62."""
    sigma = lognormal_sigma_from_p95_over_mean(9.7 / 4.23)
    assert sigma == pytest.approx(0.622, abs=0.001)
    assert ChatbotShareGPT().output_sigma == pytest.approx(sigma, abs=0.005)
    assert math.exp(1.6448536 * sigma) / math.exp(sigma ** 2 / 2) == pytest.approx(9.7 / 4.23, rel=1e-6)


# --- registry and checks --------------------------------------------------------------------------

def test_registry_names():
    expected = {"chatbot-sharegpt", "synthetic-fixed", "sc-hotpotqa",
                "cot-hotpotqa", "cot-math", "cot-humaneval",
                "react-hotpotqa", "react-webshop", "react-math", "react-humaneval",
                "reflexion-hotpotqa", "reflexion-webshop", "reflexion-math", "reflexion-humaneval",
                "lats-hotpotqa", "lats-webshop", "lats-math", "lats-humaneval",
                "llmcompiler-hotpotqa", "llmcompiler-webshop"}
    assert set(AGENTS) == expected
    a = make_agent("react-hotpotqa", iteration_budget=5, fewshot=2)
    assert isinstance(a, TaskAgent) and a.strategy.iteration_budget == 5 and a.task.fewshot == 2
    assert agent_knobs("react-hotpotqa")[:2] == ["iteration_budget", "stuck_fraction"]


def test_make_agent_unknown_name_lists_valid_names():
    with pytest.raises(InputError) as e:
        make_agent("reflexion")
    assert str(e.value) == f"agent 'reflexion': unknown agent: expected one of {', '.join(sorted(AGENTS))}"


def test_make_agent_unknown_knob_lists_valid_knobs():
    with pytest.raises(InputError) as e:
        make_agent("react-hotpotqa", budget=3)
    assert str(e.value).startswith("agent react-hotpotqa: unknown knob budget: expected one of iteration_budget, "
                                   "stuck_fraction, ")


@pytest.mark.parametrize("name, knobs, message", [
    ("react-hotpotqa", {"iteration_budget": 0}, "agent react-hotpotqa: iteration_budget = 0: expected an integer in [1, 10000]"),
    ("react-hotpotqa", {"fewshot": -1}, "agent react-hotpotqa: fewshot = -1: expected an integer >= 0"),
    ("react-hotpotqa", {"fewshot": 2.5}, "agent react-hotpotqa: fewshot = 2.5: expected an integer >= 0"),
    ("react-hotpotqa", {"stuck_fraction": 1.5},
     "agent react-hotpotqa: stuck_fraction = 1.5: expected a probability in [0, 1]"),
    ("react-hotpotqa", {"tool_latency_mean_s": 0},
     "agent react-hotpotqa: tool_latency_mean_s = 0: expected a finite number > 0"),
    ("react-hotpotqa", {"output_sigma": float("nan")},
     "agent react-hotpotqa: output_sigma = nan: expected a lognormal sigma in [0, 3]"),
    ("lats-hotpotqa", {"n_children": 0}, "agent lats-hotpotqa: n_children = 0: expected an integer in [1, 256]"),
    ("lats-hotpotqa", {"sample_mode": "batch"},
     "agent lats-hotpotqa: sample_mode = 'batch': expected one of one-call, fan-out"),
    ("reflexion-hotpotqa", {"max_reflections": -1},
     "agent reflexion-hotpotqa: max_reflections = -1: expected an integer in [0, 1024]"),
    ("llmcompiler-hotpotqa", {"tools_per_plan_mean": 0.5},
     "agent llmcompiler-hotpotqa: tools_per_plan_mean = 0.5: expected a number >= 1 (a plan calls at least one tool)"),
    ("react-math", {"second_tool": ""},
     "agent react-math: second_tool = '': expected a tool name when second_tool_share > 0"),
    ("sc-hotpotqa", {"n_samples": 0}, "agent sc-hotpotqa: n_samples = 0: expected an integer in [1, 1024]"),
])
def test_make_agent_bad_values(name, knobs, message):
    with pytest.raises(InputError) as e:
        make_agent(name, **knobs)
    assert str(e.value) == message


def test_generate_sessions_streams_with_ids():
    agent = make_agent("chatbot-sharegpt")
    stream = generate_sessions(agent, np.random.default_rng(1), iter([0.0, 0.5, 2.0]), first_id=10)
    assert iter(stream) is stream
    sessions = list(stream)
    assert [(s.id, s.arrival_s) for s in sessions] == [(10, 0.0), (11, 0.5), (12, 2.0)]
