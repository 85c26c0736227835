"""Agent generators: the registry of workloads the simulator can draw sessions from.

``make_agent(name, **knobs)`` returns a generator whose ``session(rng, session_id, arrival_s)``
draws one ``Session`` (a DAG of LLM and tool calls, ``traces.schema``) from ``rng`` in a fixed
order, so one seed gives one session. Nothing here touches the clock or a file.

Agentic workloads are a *task* (``traces.tasks``: the benchmark's prompt, step, observation and
tool distributions) run by a *strategy* (the control flow): ``cot`` (CoT, self-consistency),
``react``, ``reflexion``, ``lats``, ``llmcompiler``. The registry below pairs them as in the paper's
Table II (paper §1.2) and sets each pair's calibrated defaults. Every field of the task and of the
strategy is a knob: ``make_agent("react-hotpotqa", iteration_budget=5, fewshot=2)``.

Sources: "paper §x" is ``docs/paper.md``; [Q] quoted, [F] read from a figure, [S] a
secondary visual reading, [I] derived (arithmetic shown), "assumption" where no source gives it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, ClassVar, Iterable, Iterator, Mapping, Protocol

import numpy as np

from agentwatt.core.errors import InputError
from agentwatt.traces.builder import DagBuilder
from agentwatt.traces.cot import CoT, SelfConsistency
from agentwatt.traces.lats import Lats
from agentwatt.traces.llmcompiler import LLMCompiler
from agentwatt.traces.params import require_int, require_positive, require_sigma
from agentwatt.traces.react import React
from agentwatt.traces.reflexion import Reflexion
from agentwatt.traces.sampling import draw_tokens
from agentwatt.traces.schema import LLMCall, Segment, Session
from agentwatt.traces.tasks import HOTPOTQA, HUMANEVAL, MATH, MAX_SEGMENT_TOKENS, WEBSHOP, Task


class Agent(Protocol):
    """What the simulator needs from a generator."""

    name: str

    def session(self, rng: np.random.Generator, session_id: int, arrival_s: float) -> Session: ...


class Strategy(Protocol):
    """An agent's control flow: adds one session's nodes to a builder."""

    def validate(self, agent: str, task: Task) -> None: ...

    def build(self, b: DagBuilder, agent: str, task: Task, rng: np.random.Generator) -> None: ...


# --- chatbot (ShareGPT, single turn) ------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ChatbotShareGPT:
    """One LLM call per session, no tools, no shared prefix: the paper's non-agentic baseline.

    Token lengths are lognormal with ShareGPT's published means. The paper's ShareGPT run has no
    system prompt worth caching (prefix caching gains only 1.03x, paper §2.5 [Q]), so the prompt is
    one unique segment.
    """

    name: ClassVar[str] = "chatbot-sharegpt"

    input_mean_tokens: float = 161.31  # [Q] docs/traces-survey.md §2.5: vLLM paper (Kwon et al., SOSP'23) Fig. 11, ShareGPT mean input
    input_sigma: float = 1.0  # assumption: ShareGPT prompts are heavy-tailed (pasted documents next to one-liners); no published shape
    output_mean_tokens: float = 337.99  # [Q] docs/traces-survey.md §2.5: vLLM paper Fig. 11, ShareGPT mean output
    output_sigma: float = 0.62  # [I] paper §2.2 + §2.9: single-request ShareGPT p95 9.7 s, mean 4.23 s, p95/mean = 2.293;
    #   latency is decode-dominated (paper §2.3: decode 74.1 % vs prefill 4.7 % of GPU time [Q]), so latency ∝ output
    #   tokens and p95/mean of the output is 2.293. For a lognormal p95/mean = exp(1.645σ − σ²/2), so
    #   σ²/2 − 1.645σ + ln 2.293 = 0 → σ = 1.645 − sqrt(1.645² − 2·0.8299) = 1.645 − 1.023 = 0.622 ≈ 0.62.
    max_segment_tokens: int = MAX_SEGMENT_TOKENS  # assumption: see MAX_SEGMENT_TOKENS; clipping moves the input
    #   mean by about −0.3 % (the mass above 4,096 tokens at σ = 1) and the output mean by < 0.01 %.

    def __post_init__(self) -> None:
        require_positive(self.name, self, ("input_mean_tokens", "output_mean_tokens"))
        require_sigma(self.name, self, ("input_sigma", "output_sigma"))
        require_int(self.name, self, "max_segment_tokens", 1)

    def session(self, rng: np.random.Generator, session_id: int, arrival_s: float) -> Session:
        prompt_tokens = draw_tokens(rng, self.input_mean_tokens, self.input_sigma, self.max_segment_tokens)
        output_tokens = draw_tokens(rng, self.output_mean_tokens, self.output_sigma, self.max_segment_tokens)
        call = LLMCall(
            id=0,
            prompt=(Segment(f"s{session_id}:q", prompt_tokens),),
            output_tokens=output_tokens,
            output_key=f"s{session_id}:o0",
        )
        return Session(id=session_id, agent=self.name, arrival_s=float(arrival_s), nodes=(call,))


# --- fixed-size synthetic calls ----------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class FixedCall:
    """One LLM call of exactly ``prompt_tokens`` in and ``output_tokens`` out, no tools, no shared
    prefix. Not from any paper: a controlled workload for analytic checks (with one request at a
    time its service time is a constant, so a replica is an M/D/1 queue) and for teaching."""

    name: ClassVar[str] = "synthetic-fixed"

    prompt_tokens: int = 512   # user's choice (no source: a synthetic workload)
    output_tokens: int = 128   # user's choice (no source: a synthetic workload)

    def __post_init__(self) -> None:
        require_int(self.name, self, "prompt_tokens", 1)
        require_int(self.name, self, "output_tokens", 1)

    def session(self, rng: np.random.Generator, session_id: int, arrival_s: float) -> Session:
        call = LLMCall(id=0, prompt=(Segment(f"s{session_id}:q", int(self.prompt_tokens)),),
                       output_tokens=int(self.output_tokens), output_key=f"s{session_id}:o0")
        return Session(id=session_id, agent=self.name, arrival_s=float(arrival_s), nodes=(call,))


# --- agents made of a task and a strategy --------------------------------------------------------

@dataclass(frozen=True)
class TaskAgent:
    """A benchmark task run by a strategy; checked when made."""

    name: str
    task: Task
    strategy: Strategy

    def __post_init__(self) -> None:
        self.task.validate(self.name)
        self.strategy.validate(self.name, self.task)

    @property
    def shared_prefix(self) -> Segment:
        """The instruction + few-shot block every session of this agent starts with."""
        return self.task.shared_prefix(self.name)

    def session(self, rng: np.random.Generator, session_id: int, arrival_s: float) -> Session:
        b = DagBuilder(session_id)
        self.strategy.build(b, self.name, self.task, rng)
        return b.session(self.name, arrival_s)


@dataclass(frozen=True)
class Preset:
    """A registry entry: strategy class + task + this pair's defaults; call it with knobs."""

    name: str
    strategy: type
    task: Task
    defaults: Mapping[str, Any] = field(default_factory=dict)  # strategy field → value for this pair

    def knobs(self) -> list[str]:
        """Every knob, strategy fields first, then task fields (``benchmark`` is fixed)."""
        return [f.name for f in fields(self.strategy)] + [f.name for f in fields(Task) if f.name != "benchmark"]

    def __call__(self, **knobs: Any) -> TaskAgent:
        strategy_fields = {f.name for f in fields(self.strategy)}
        s_knobs = {k: v for k, v in knobs.items() if k in strategy_fields}
        t_knobs = {k: v for k, v in knobs.items() if k not in strategy_fields}
        return TaskAgent(self.name, replace(self.task, **t_knobs), self.strategy(**{**self.defaults, **s_knobs}))


def _preset(name: str, strategy: type, task: Task, **defaults: Any) -> Preset:
    return Preset(name, strategy, task, MappingProxyType(defaults))


PRESETS: tuple[Preset, ...] = (
    # --- CoT: one call, no tools (Table II: HotpotQA, MATH, HumanEval) ---------------------------
    _preset("cot-hotpotqa", CoT, HOTPOTQA),
    _preset("cot-math", CoT, MATH),
    _preset("cot-humaneval", CoT, HUMANEVAL),
    _preset("sc-hotpotqa", SelfConsistency, HOTPOTQA),  # not in the paper: CoT with n samples (parallel scaling)

    # --- ReAct (Table II: all four) ---------------------------------------------------------------
    _preset("react-hotpotqa", React, HOTPOTQA),  # defaults in react.React are HotpotQA's (mean 9.6 s, p95 20.7 s)
    _preset(
        "react-webshop", React, WEBSHOP,
        iteration_budget=30,  # [F] paper Fig. 14 sweeps WebShop budgets 5–30; the repo's ReAct iteration_limit is 30
        min_llm_calls=3,  # assumption: search, click an item, click buy
        extra_calls_mean=0.3,  # [I] fitted with the bundled profile: sequential mean latency 5.3 s (paper §2.2 [Q])
        extra_calls_shape=1.0,  # assumption: geometric
        stuck_fraction=0.06,  # [I] paper §2.2: p95/mean = 50.8 / 5.3 = 9.6 (Fig. 7 [F]): the tail is a looping group
        #   of > 5 % of tasks that runs to the budget (paper §2.7 [Q]); 6 % keeps the mean at 5.3 s.
        stuck_output_scale=3.0,  # [I] fitted so that a task that loops for 30 calls takes ≈ 50.8 s, the Fig. 7 p95 [F];
        #   assumption: a looping model restates its plan and the page, so its steps are longer than a normal step
    ),
    _preset(
        "react-math", React, MATH,
        iteration_budget=15,  # assumption: Fig. 4's MATH axis tops at 36 calls [F]; 15 keeps ReAct well inside it
        min_llm_calls=2,  # assumption: one tool call, then the answer
        extra_calls_mean=7.0,  # [I] chosen with the other design points so that ReAct, Reflexion and LLMCompiler
        #   average 9.2 LLM calls per request over their Table II benchmarks (paper §2.1 [Q]: 9.2× CoT)
        extra_calls_shape=2.0,  # assumption
        stuck_fraction=0.05,  # assumption: as HotpotQA's looping share
    ),
    _preset(
        "react-humaneval", React, HUMANEVAL,
        iteration_budget=7,  # [I] Fig. 4's HumanEval axis tops at 8 calls [F]: 7 steps + 1 test-writing call = 8
        min_llm_calls=2,  # assumption: write the function, run the tests, Finish
        extra_calls_mean=1.0,  # assumption: about one fix per task
        extra_calls_shape=1.0,  # assumption: geometric
        stuck_fraction=0.05,  # assumption: as HotpotQA's looping share
        extra_calls_per_missing_shot=0.0,  # fewshot_reference is 1: nothing to miss below it but 0 shots
    ),

    # --- Reflexion (Table II: all four) ---------------------------------------------------------
    _preset(
        "reflexion-hotpotqa", Reflexion, HOTPOTQA,  # other defaults in reflexion.Reflexion are HotpotQA's
        extra_calls_mean=1.5,  # [I] fitted so that mean latency is ~17 s at 2 reflections and ~26 s at 4, the first two
        #   points of paper Fig. 16(a) (16.9 s → 25.6 s, paper §2.8 [Q]; our mapping of those values to 2 and 4)
    ),
    _preset(
        "reflexion-webshop", Reflexion, WEBSHOP,
        iteration_budget=15,  # [I] paper §5: the repo's Reflexion iteration_limit (10) is for HotpotQA; WebShop needs
        #   ≥ 3 steps per attempt (min_llm_calls), so each trial gets half of ReAct-WebShop's 30 calls (assumption)
        min_llm_calls=3,  # as ReAct-WebShop
        extra_calls_mean=5.0,  # [I] chosen for the 9.2× average (see react-math)
        extra_calls_shape=1.0,  # assumption
    ),
    _preset(
        "reflexion-math", Reflexion, MATH,
        iteration_budget=8,  # assumption: as HotpotQA's trial cap scaled to MATH's longer steps
        extra_calls_mean=5.0,  # [I] chosen for the 9.2× average (see react-math)
        extra_calls_shape=2.0,  # assumption
    ),
    _preset(
        "reflexion-humaneval", Reflexion, HUMANEVAL,
        iteration_budget=2,  # [I] Fig. 4's HumanEval axis tops at 8 calls [F]: write + test, then at most 2 reflections
        #   and 2 rewrites: 1 test-writing + 3 trials × 2 steps would exceed 8, so trials are 1–2 steps
        min_llm_calls=1,  # Reflexion's programming loop: implement, test; the test result ends the trial
        extra_calls_mean=0.5,  # assumption
        extra_calls_shape=1.0,  # assumption
        max_reflections=2,  # [I] keeps the worst case at 1 + 3 × 2 + 2 = 9 ≈ Fig. 4's axis; the mean stays < 8
        solvable_fraction=0.7,  # assumption: HumanEval is easier for an 8B model than HotpotQA
        extra_calls_per_missing_shot=0.0,
    ),

    # --- LATS (Table II: all four) ---------------------------------------------------------------
    _preset("lats-hotpotqa", Lats, HOTPOTQA),  # defaults in lats.Lats are HotpotQA's (~71 calls per request)
    _preset(
        "lats-webshop", Lats, WEBSHOP,
        n_children=5,  # assumption: one more child than HotpotQA (WebShop pages offer many items to click)
        max_iterations=40,  # assumption
        max_depth=15,  # assumption: a shopping episode needs more steps than a two-hop question
        child_success_prob=0.012,  # [I] fitted so that LATS-WebShop averages ~180 calls (Fig. 4 bar "close to 180" [S])
        solvable_fraction=0.7,  # assumption
        sample_diversity=0.5, terminal_prob=0.08,  # as fitted before the HotpotQA width model (lats.py): only
        max_reflections=100_000,  # ... max_iterations bounds these searches
    ),
    _preset(
        "lats-math", Lats, MATH,
        n_children=4,  # as HotpotQA
        max_iterations=7,  # [I] Fig. 4's MATH axis tops at 36 [F]: 7 iterations × 5 calls = 35
        child_success_prob=0.07,  # [I] fitted so that LATS-MATH averages ~29 calls (inside the 36 axis)
        solvable_fraction=0.6,  # assumption
        sample_diversity=0.5, terminal_prob=0.08,  # as fitted before the HotpotQA width model (lats.py): only
        max_reflections=100_000,  # ... max_iterations bounds these searches
    ),
    _preset(
        "lats-humaneval", Lats, HUMANEVAL,
        n_children=2,  # [I] Fig. 4's HumanEval axis tops at 8 [F]: 1 test-writing call + 2 iterations × (1 + 2) = 7
        max_iterations=2,  # [I] see n_children
        child_success_prob=0.3,  # assumption: most HumanEval tasks pass within two expansions
        solvable_fraction=0.8,  # assumption
        sample_diversity=0.5, terminal_prob=0.08,  # as fitted before the HotpotQA width model (lats.py): only
        max_reflections=100_000,  # ... max_iterations bounds these searches
    ),

    # --- LLMCompiler (Table II: HotpotQA, WebShop) ------------------------------------------------
    _preset("llmcompiler-hotpotqa", LLMCompiler, HOTPOTQA),  # defaults in llmcompiler.LLMCompiler are HotpotQA's
    _preset(
        "llmcompiler-webshop", LLMCompiler, WEBSHOP,
        tools_per_plan_mean=5.0,  # assumption: paper §2.7 [Q] DAG planning makes "unnecessary tool invocations" on
        #   WebShop: a plan searches and clicks several items at once
        dependent_share=0.6,  # assumption: clicks depend on the search that listed the item
        replan_prob=0.5,  # assumption: shopping needs feedback from the pages, so plans are redone more often
        max_replans=3,  # assumption
    ),
)

# --- registry -----------------------------------------------------------------------------------

AGENTS: dict[str, Any] = {
    ChatbotShareGPT.name: ChatbotShareGPT,
    FixedCall.name: FixedCall,
    **{p.name: p for p in PRESETS},
}


def agent_knobs(name: str) -> list[str]:
    """The knobs (field names) of a registered agent, in declaration order."""
    entry = AGENTS[name]
    return entry.knobs() if isinstance(entry, Preset) else [f.name for f in fields(entry)]


def make_agent(name: str, **knobs: object) -> Agent:
    """The generator registered as ``name``, with ``knobs`` overriding its default fields."""
    entry = AGENTS.get(name)
    if entry is None:
        raise InputError(f"agent {name!r}: unknown agent: expected one of {', '.join(sorted(AGENTS))}")
    valid = agent_knobs(name)
    unknown = sorted(k for k in knobs if k not in valid)
    if unknown:
        raise InputError(f"agent {name}: unknown knob {', '.join(unknown)}: expected one of {', '.join(valid)}")
    return entry(**knobs)


def generate_sessions(agent: Agent, rng: np.random.Generator, arrivals: Iterable[float], *,
                      first_id: int = 0) -> Iterator[Session]:
    """Stream one session per arrival time, with ids ``first_id, first_id + 1, ...``."""
    for i, t in enumerate(arrivals):
        yield agent.session(rng, first_id + i, t)
