"""Benchmarks as token and tool distributions: what one task of HotpotQA, WebShop, MATH or HumanEval
looks like to the serving system, independent of the agent that solves it.

A ``Task`` holds the prompt pieces (instruction, few-shot block, question), the length of one
reasoning step's output, of a CoT answer and of a tool observation, and the tool(s) with their
latency. Agent strategies (``react``, ``reflexion``, ``lats``, ...) combine a task with a control
flow. Every number carries its source: "paper §x" is ``docs/paper.md``; [Q] quoted, [F] read
from a figure axis, [I] derived (arithmetic shown), "assumption" where no source gives it.

Tool latencies are lognormal with the given mean; ``tool_latency_scale`` multiplies every tool
latency (a what-if knob: a slower search API, a faster sandbox).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agentwatt.traces.params import (require, require_int, require_name, require_positive, require_prob,
                                     require_sigma)
from agentwatt.traces.sampling import draw_lognormal, draw_tokens
from agentwatt.traces.schema import Segment

MAX_SEGMENT_TOKENS = 4096  # assumption: clip for one drawn segment (prompt, output or observation);
#   it bounds the lognormal tails, removing < 0.01 % of the draws of every default below.


@dataclass(frozen=True, kw_only=True)
class Task:
    """One benchmark's prompt, step, answer, observation and tool distributions."""

    benchmark: str
    fewshot: int  # few-shot examples in the shared prompt block (test-time-scaling knob, paper Fig. 15)
    fewshot_reference: int  # the few-shot count at which an agent's loop-length defaults hold
    instruction_tokens: int
    fewshot_example_tokens: int
    question_mean_tokens: float
    question_sigma: float
    output_mean_tokens: float  # one reasoning step: thought + action
    output_sigma: float
    answer_mean_tokens: float  # one CoT call: the whole reasoning chain + the answer
    answer_sigma: float
    observation_mean_tokens: float
    observation_sigma: float
    tool: str
    tool_latency_mean_s: float
    tool_latency_sigma: float
    second_tool: str = ""  # optional second tool, used with probability second_tool_share per step
    second_tool_share: float = 0.0  # 0 = no second tool (the three fields below are then unused)
    second_tool_latency_mean_s: float = 0.001  # placeholder, unused while second_tool_share is 0
    second_tool_latency_sigma: float = 0.0  # placeholder, unused while second_tool_share is 0
    tool_latency_scale: float = 1.0  # what-if knob: multiplies every tool latency (1 = as measured)
    test_generation: bool = False  # HumanEval: the first tool step asks the LLM to write tests (GPU work)
    testgen_instruction_tokens: int = 1  # placeholder, unused unless test_generation
    testgen_output_mean_tokens: float = 1.0  # placeholder, unused unless test_generation
    testgen_output_sigma: float = 0.0  # placeholder, unused unless test_generation
    max_segment_tokens: int = MAX_SEGMENT_TOKENS  # assumption: see MAX_SEGMENT_TOKENS

    def validate(self, agent: str) -> None:
        require_int(agent, self, "fewshot", 0)
        require_int(agent, self, "fewshot_reference", 0)
        require_int(agent, self, "instruction_tokens", 1)
        require_int(agent, self, "fewshot_example_tokens", 0)
        require_int(agent, self, "testgen_instruction_tokens", 1)
        require_int(agent, self, "max_segment_tokens", 1)
        require_positive(agent, self, ("question_mean_tokens", "output_mean_tokens", "answer_mean_tokens",
                                       "observation_mean_tokens", "tool_latency_mean_s",
                                       "second_tool_latency_mean_s", "tool_latency_scale",
                                       "testgen_output_mean_tokens"))
        require_sigma(agent, self, ("question_sigma", "output_sigma", "answer_sigma", "observation_sigma",
                                    "tool_latency_sigma", "second_tool_latency_sigma", "testgen_output_sigma"))
        require_prob(agent, self, ("second_tool_share",))
        require_name(agent, self, ("tool",))
        require_name(agent, self, ("second_tool",), allow_empty=True)
        require(agent, "second_tool", self.second_tool, self.second_tool_share == 0 or self.second_tool != "",
                "a tool name when second_tool_share > 0")
        require(agent, "test_generation", self.test_generation, isinstance(self.test_generation, bool),
                "true or false")

    # --- prompt pieces ----------------------------------------------------------------------

    def shared_prefix(self, agent: str) -> Segment:
        """Instruction + few-shot block, identical for every session of ``agent`` with this few-shot count."""
        return Segment(f"{agent}:sys:fewshot{self.fewshot}",
                       self.instruction_tokens + self.fewshot * self.fewshot_example_tokens)

    def missing_shots(self) -> int:
        """Few-shot examples below the reference count (0 when at or above it)."""
        return max(0, self.fewshot_reference - self.fewshot)

    # --- draws --------------------------------------------------------------------------------

    def draw_question(self, rng: np.random.Generator) -> int:
        return draw_tokens(rng, self.question_mean_tokens, self.question_sigma, self.max_segment_tokens)

    def draw_step_output(self, rng: np.random.Generator, scale: float = 1.0) -> int:
        return draw_tokens(rng, self.output_mean_tokens * scale, self.output_sigma, self.max_segment_tokens)

    def draw_answer(self, rng: np.random.Generator) -> int:
        return draw_tokens(rng, self.answer_mean_tokens, self.answer_sigma, self.max_segment_tokens)

    def draw_observation(self, rng: np.random.Generator) -> int:
        return draw_tokens(rng, self.observation_mean_tokens, self.observation_sigma, self.max_segment_tokens)

    def draw_testgen_output(self, rng: np.random.Generator) -> int:
        return draw_tokens(rng, self.testgen_output_mean_tokens, self.testgen_output_sigma, self.max_segment_tokens)

    def draw_tool(self, rng: np.random.Generator) -> tuple[str, float]:
        """Which tool one step calls, and its latency in seconds."""
        if self.second_tool_share > 0 and rng.random() < self.second_tool_share:
            name, mean, sigma = self.second_tool, self.second_tool_latency_mean_s, self.second_tool_latency_sigma
        else:
            name, mean, sigma = self.tool, self.tool_latency_mean_s, self.tool_latency_sigma
        return name, self.tool_latency_scale * draw_lognormal(rng, mean, sigma)


# --- the four benchmarks of the paper's Table II (paper §1.2) -------------------------------------

HOTPOTQA = Task(
    benchmark="hotpotqa",
    fewshot=5,  # [I] paper §2.7: the repo caps HotpotQA few-shot examples at 5; Fig. 15 sweeps 0–5 [F]
    fewshot_reference=5,  # the loop-length defaults below are calibrated at the repo's 5 examples
    instruction_tokens=150,  # assumption: ReAct instruction text (tool descriptions, format rules)
    fewshot_example_tokens=150,  # [I] the shared block is 900 tokens at fewshot = 5, so that the first prompt is
    #   about 1,000 tokens (paper §2.4 [Q]: "initial inputs are typically around 1,000 tokens"): (900 − 150) / 5 = 150.
    question_mean_tokens=100.0,  # [I] 1,000 [Q] paper §2.4 − 900 shared: the question plus its chat-template framing
    question_sigma=0.3,  # assumption: questions vary little in length
    output_mean_tokens=65.0,  # [I] thought + action per step, fitted with the ReAct loop (react.React) so that
    #   single-request latency has mean 9.6 s and p95 20.7 s (paper §2.2) with tool time just over half of it
    #   (HotpotQA is "tool-dominated", GPU idle "up to 54.5 %", paper §2.2/§2.3 [Q]); at ~12.4 ms per decode step
    #   (bundled 8B/A100 profile) a step's LLM time is ~0.9 s. Paper §2.4: shorter than CoT's per-call output [Q].
    output_sigma=0.5,  # assumption: moderate spread of thought length
    answer_mean_tokens=150.0,  # assumption: a CoT call writes the whole two-hop chain (about two sentences per hop)
    #   and the answer; paper §2.4: agents' per-call output is shorter than CoT's [Q], so > 65.
    answer_sigma=0.5,  # assumption: as output_sigma
    observation_mean_tokens=550.0,  # [I] paper §2.4: the input grows 3–4× from ~1,000 tokens [Q]; over a mean ReAct
    #   session of 5 calls the 5th prompt is 1,000 + 4 × (65 + 550) = 3,460 tokens, 3.5× the first; the mean input
    #   over those 5 calls, 2,230, is inside Fig. 8's 2,700-token axis [F].
    observation_sigma=0.7,  # assumption: a search returns a page's opening paragraphs, a lookup one sentence, a miss
    #   a short "Could not find ..." list, so observation lengths vary widely.
    tool="wikipedia",  # paper §1.2: HotpotQA's tools are Wikipedia search and lookup over HTTP
    tool_latency_mean_s=1.2,  # [Q] paper §1.2: Wikipedia API calls "take an average of 1.2 seconds"
    tool_latency_sigma=0.5,  # assumption: no published distribution of Wikipedia API latency (docs/traces-survey.md §4.5)
)

WEBSHOP = Task(
    benchmark="webshop",
    fewshot=5,  # [I] paper §2.7: the repo caps WebShop few-shot examples at 5
    fewshot_reference=5,  # defaults calibrated at 5 examples
    instruction_tokens=100,  # assumption: action format rules (search[...], click[...])
    fewshot_example_tokens=250,  # assumption: an example trajectory holds a results page and an item page
    question_mean_tokens=60.0,  # assumption: a shopping instruction ("i need a long clip-in hair extension ... lower
    #   than 40.00 dollars") of ~30 tokens plus its framing
    question_sigma=0.3,  # assumption
    output_mean_tokens=45.0,  # assumption: WebShop actions are short commands with an occasional thought; chosen with
    #   the ReAct-WebShop loop so that the sequential mean latency is 5.3 s (paper §2.2 [Q]), see strategies
    output_sigma=0.5,  # assumption
    answer_mean_tokens=120.0,  # assumption (no CoT run on WebShop in the paper, Table II; used only if asked)
    answer_sigma=0.5,  # assumption
    observation_mean_tokens=350.0,  # assumption: a results page lists ~10 products (title, price), an item page its
    #   options; paper §2.4: WebShop carries a large tool history and has the longest contexts (Fig. 8 axis
    #   0–6,000 tokens [F])
    observation_sigma=0.5,  # assumption
    tool="webshop",  # paper §1.2: locally hosted web pages (search, click)
    tool_latency_mean_s=0.02,  # [Q] paper §1.2: "as low as 20 ms per call"; the repo's debug trace shows 7–22 ms
    #   per WebShop call (docs/traces-survey.md §3)
    tool_latency_sigma=0.5,  # assumption
)

MATH = Task(
    benchmark="math",
    fewshot=2,  # [I] paper §2.7: the repo caps MATH few-shot examples at 2
    fewshot_reference=2,  # defaults calibrated at 2 examples
    instruction_tokens=200,  # assumption: instructions plus the calculator and Wolfram Alpha tool descriptions
    fewshot_example_tokens=350,  # assumption: a worked example with tool calls; Fig. 8 MATH axis 0–3,000 [F]
    question_mean_tokens=120.0,  # assumption: MATH problems run from one line to a paragraph
    question_sigma=0.5,  # assumption
    output_mean_tokens=150.0,  # assumption: paper §2.4: MATH carries a large LLM history [Q], i.e. long reasoning
    #   steps, with short tool results (observation_mean_tokens)
    output_sigma=0.6,  # assumption
    answer_mean_tokens=350.0,  # assumption: a whole worked solution in one CoT call
    answer_sigma=0.6,  # assumption
    observation_mean_tokens=40.0,  # assumption: a calculator or Wolfram Alpha result is a short expression
    observation_sigma=0.6,  # assumption
    tool="wolfram-alpha",  # paper §1.2 / §5: Wolfram Alpha API (external) + a numexpr Python calculator (local CPU)
    tool_latency_mean_s=3.0,  # assumption: no published latency; an external full-results API call of a few seconds.
    #   With the share below the GPU idles ~45 % of a ReAct-MATH session, as paper §2.3 reports "up to 54.5 %" for
    #   HotpotQA and MATH [Q].
    tool_latency_sigma=0.6,  # assumption
    second_tool="python-calculator",  # paper §5: numexpr calculator, local CPU
    second_tool_share=0.4,  # assumption: about 2 calculator calls for every 3 Wolfram Alpha calls
    second_tool_latency_mean_s=0.005,  # assumption: numexpr on a short expression plus Python overhead, a few ms
    second_tool_latency_sigma=0.5,  # assumption
)

HUMANEVAL = Task(
    benchmark="humaneval",
    fewshot=1,  # assumption: the repo states no HumanEval cap; one example function with its tests
    fewshot_reference=1,  # defaults calibrated at 1 example
    instruction_tokens=150,  # assumption
    fewshot_example_tokens=250,  # assumption: an example function, its tests and a fix
    question_mean_tokens=150.0,  # assumption: a function signature with its docstring and examples
    question_sigma=0.4,  # assumption
    output_mean_tokens=200.0,  # assumption: a function body plus a short thought; Fig. 8 HumanEval axis 0–1,800 [F]
    output_sigma=0.5,  # assumption
    answer_mean_tokens=200.0,  # assumption: CoT writes the function once
    answer_sigma=0.5,  # assumption
    observation_mean_tokens=80.0,  # assumption: pass/fail lines of the generated tests
    observation_sigma=0.6,  # assumption
    tool="python-exec",  # paper §1.2: runs self-written test code (local CPU)
    tool_latency_mean_s=0.3,  # assumption: start a Python process and run a few asserts
    tool_latency_sigma=0.8,  # assumption: an occasional slow or looping test
    test_generation=True,  # [Q] paper §1.2: "the test-generation tool runs the LLM on the GPU", so it is modelled as an
    #   LLM call before the first execution, not as idle tool time
    testgen_instruction_tokens=300,  # assumption: instruction + example tests for the test-writing prompt
    testgen_output_mean_tokens=150.0,  # assumption: about five assert lines
    testgen_output_sigma=0.5,  # assumption
)

TASKS = {t.benchmark: t for t in (HOTPOTQA, WEBSHOP, MATH, HUMANEVAL)}
