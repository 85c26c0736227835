"""The paper report's measurement helpers: the knee rule, vLLM 0.6.6's engine settings, profile
variants for one-factor probes, and the per-call-timer split of a request's time."""
from __future__ import annotations

import pytest

from agentwatt.paper.load import KNEE_FACTOR, LoadPoint, knee
from agentwatt.paper.runs import VLLM_066, Lab, call_time_split, time_split


def _pt(rate, p95, stable=True):
    return LoadPoint(rate, p95, p95 / 2, stable, 0.5, 0.5)


def test_knee_interpolates_between_the_last_sustainable_rate_and_the_next():
    pts = [_pt(1, 10), _pt(2, 15), _pt(3, 25)]
    assert knee(pts, 20.0) == (pytest.approx(2.5), False)
    assert knee(pts, 30.0) == (3, True)                       # every grid rate passed: a lower bound
    assert knee([_pt(1, 10), _pt(2, 15, stable=False)], 20.0) == (1, False)   # unfinished: no interpolation
    assert knee([_pt(1, 25)], 20.0) == (None, False)


def test_knee_rule_is_the_papers_price_of_concurrency():
    # docs/paper.md §2.6 [Q]: the peaks cost "a 2.1x increase in average latency"
    assert KNEE_FACTOR == 2.0


@pytest.fixture(scope="module")
def lab():
    return Lab(seed=1)


def test_vllm_066_engine_reaches_the_scenario(lab):
    assert VLLM_066 == {"max_num_batched_tokens": 512}
    res = lab.alone("cot-hotpotqa", 2, engine=VLLM_066)
    assert res.scenario.engine.max_num_batched_tokens == 512
    assert res.scenario.engine.prefix_caching is True
    assert lab.alone("cot-hotpotqa", 2).scenario.engine.max_num_batched_tokens == 2048   # default unchanged


def test_profile_variant_scales_one_latency_term(lab):
    name = lab.variant("8b", decode_ctx_s=0.5)
    base = lab.profile("llama-3.1-8b_a100-40gb")
    v = lab.profile(name)
    assert v.latency.decode_ctx_s == pytest.approx(0.5 * base.latency.decode_ctx_s)
    assert v.latency.weight_s == base.latency.weight_s
    res = lab.poisson("chatbot-sharegpt", 1.0, 5.0, model=name)
    assert res.summary["sessions_completed"] > 0


def test_call_timers_agree_with_the_wall_clock_for_a_sequential_agent(lab):
    res = lab.alone("react-hotpotqa", 4, engine=VLLM_066)
    calls = call_time_split(res, "react-hotpotqa", {}, 1)
    assert calls == pytest.approx(time_split(res)["tool"], abs=0.01)


def test_call_timers_count_tools_that_overlap_llm_calls(lab):
    res = lab.alone("lats-hotpotqa", 2, engine=VLLM_066)
    calls = call_time_split(res, "lats-hotpotqa", {}, 1)
    assert calls is not None and calls > time_split(res)["tool"]
