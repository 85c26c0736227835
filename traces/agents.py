"""Agent generators: one frozen dataclass per agent type, turning random draws into Sessions.

Each generator's fields are its parameters, all with defaults taken from the seed paper
(``shared/docs/paper.md``, cited as "paper §x.y") or the trace survey (``traces-survey.md``). Tags:
[Q] quoted from the paper, [F] read from a figure, [I] derived (arithmetic shown), "assumption"
where no source gives the number. Knobs a user turns for test-time scaling (``iteration_budget``,
``fewshot``) are ordinary fields; ``make_agent("react-hotpotqa", iteration_budget=5)`` overrides one.

Segment keys follow ``traces.schema``: the instruction + few-shot block is one segment shared by
every session of an agent type with the same few-shot count, the user question is ``s{id}:q``,
call outputs are ``s{id}:o{node}`` and tool observations ``s{id}:t{node}``.

``session(rng, session_id, arrival_s)`` draws from ``rng`` in a fixed order, so one seed gives
one session. Nothing here touches the clock or a file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar, Iterable, Iterator, Protocol

import numpy as np

from agentwatt.errors import InputError
from agentwatt.traces.sampling import draw_lognormals, draw_token_counts, draw_tokens
from agentwatt.traces.schema import LLMCall, Node, Segment, Session, ToolCall

MAX_SEGMENT_TOKENS = 4096  # assumption: clip for one drawn segment (prompt, output or observation);
#   it bounds the lognormal tails, removing < 0.01 % of the draws of every default below.


class Agent(Protocol):
    """What the simulator needs from a generator."""

    name: ClassVar[str]

    def session(self, rng: np.random.Generator, session_id: int, arrival_s: float) -> Session: ...


# --- validation of parameters -------------------------------------------------------------------

def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _require(agent: str, field: str, value: object, ok: bool, expected: str) -> None:
    if not ok:
        raise InputError(f"agent {agent}: {field} = {value!r}: expected {expected}")


def _require_positive(agent: str, obj: object, names: Iterable[str]) -> None:
    for n in names:
        v = getattr(obj, n)
        _require(agent, n, v, _is_real(v) and v > 0, "a finite number > 0")


def _require_sigma(agent: str, obj: object, names: Iterable[str]) -> None:
    for n in names:
        v = getattr(obj, n)
        _require(agent, n, v, _is_real(v) and 0 <= v <= 3, "a lognormal sigma in [0, 3]")


def _require_int(agent: str, obj: object, name: str, low: int) -> None:
    v = getattr(obj, name)
    _require(agent, name, v, _is_int(v) and v >= low, f"an integer >= {low}")


# --- chatbot (ShareGPT, single turn) ------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ChatbotShareGPT:
    """One LLM call per session, no tools, no shared prefix: the paper's non-agentic baseline.

    Token lengths are lognormal with ShareGPT's published means. The paper's ShareGPT run has no
    system prompt worth caching (prefix caching gains only 1.03x, paper §2.5 [Q]), so the prompt is
    one unique segment.
    """

    name: ClassVar[str] = "chatbot-sharegpt"

    input_mean_tokens: float = 161.31  # [Q] traces-survey §2.5: vLLM paper (Kwon et al., SOSP'23) Fig. 11, ShareGPT mean input
    input_sigma: float = 1.0  # assumption: ShareGPT prompts are heavy-tailed (pasted documents next to one-liners); no published shape
    output_mean_tokens: float = 337.99  # [Q] traces-survey §2.5: vLLM paper Fig. 11, ShareGPT mean output
    output_sigma: float = 0.62  # [I] paper §2.2 + §2.9: single-request ShareGPT p95 9.7 s, mean 4.23 s, p95/mean = 2.293;
    #   latency is decode-dominated (paper §2.3: decode 74.1 % vs prefill 4.7 % of GPU time [Q]), so latency ∝ output
    #   tokens and p95/mean of the output is 2.293. For a lognormal p95/mean = exp(1.645σ − σ²/2), so
    #   σ²/2 − 1.645σ + ln 2.293 = 0 → σ = 1.645 − sqrt(1.645² − 2·0.8299) = 1.645 − 1.023 = 0.622 ≈ 0.62.
    max_segment_tokens: int = MAX_SEGMENT_TOKENS  # assumption: see MAX_SEGMENT_TOKENS; clipping moves the input
    #   mean by about −0.3 % (the mass above 4,096 tokens at σ = 1) and the output mean by < 0.01 %.

    def __post_init__(self) -> None:
        _require_positive(self.name, self, ("input_mean_tokens", "output_mean_tokens"))
        _require_sigma(self.name, self, ("input_sigma", "output_sigma"))
        _require_int(self.name, self, "max_segment_tokens", 1)

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


# --- ReAct on HotpotQA --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ReactHotpotQA:
    """ReAct on HotpotQA: a closed loop of LLM call → Wikipedia tool call → next LLM call.

    Call k+1's prompt is call k's prompt + call k's output + tool k's observation, so every call's
    prompt extends the previous one (prefix caching applies). The last call emits Finish and has no
    tool after it: tool calls = LLM calls − 1. Node ids: LLM call k is node 2k, its tool node 2k+1.

    Number of LLM calls N = ``min_llm_calls`` + G, G negative-binomial with mean
    ``extra_calls_mean`` and shape ``extra_calls_shape`` (mean 5, see the field comments), truncated
    at ``iteration_budget``. With probability ``stuck_fraction`` a session instead runs the whole
    budget (a looping task, the outliers of paper §2.7); the default 0 keeps the §2.2 targets.

    ``fewshot`` changes only the length (and key) of the shared block. The paper reports fewer
    steps with more examples (§2.7, Fig. 15) but prints no numbers, so N does not depend on it.
    """

    name: ClassVar[str] = "react-hotpotqa"

    # test-time-scaling knobs
    iteration_budget: int = 15  # [I] paper §1.1/§5: the repo's ReAct config has iteration_limit 30 LangGraph steps and
    #   one ReAct step is two graph steps (agent node + tool node) → at most 15 LLM calls per session.
    fewshot: int = 5  # [I] paper §2.7: the repo caps HotpotQA few-shot examples at 5; Fig. 15 sweeps 0–5 [F]
    stuck_fraction: float = 0.0  # assumption: paper §2.7 blames p95 growth with the budget on "a small set of outlier
    #   tasks that consume the full iteration budget" [Q] but gives no fraction; 0 keeps mean 9.6 s / p95 20.7 s (§2.2).

    # prompt: instruction + few-shot block (shared) and the question (per session)
    instruction_tokens: int = 150  # assumption: ReAct instruction text (tool descriptions, format rules)
    fewshot_example_tokens: int = 150  # [I] derived: the shared block is 900 tokens at fewshot = 5, so that the first
    #   prompt is about 1,000 tokens (paper §2.4 [Q]: "initial inputs are typically around 1,000 tokens"):
    #   (900 − 150 instruction) / 5 examples = 150 tokens per example.
    question_mean_tokens: float = 100.0  # [I] derived: 1,000 [Q] paper §2.4 − 900 shared; i.e. the question text
    #   plus its chat-template framing (assumption: HotpotQA questions alone are a few tens of tokens).
    question_sigma: float = 0.3  # assumption: questions vary little in length

    # loop length
    min_llm_calls: int = 2  # assumption: an answer needs at least one Wikipedia search, then a Finish call
    extra_calls_mean: float = 3.0  # [I] derived: mean N = 5 LLM calls. Paper §2.2: sequential mean latency 9.6 s [Q];
    #   HotpotQA is tool-dominated and its GPU is idle up to 54.5 % of the time (§2.3 [Q]), so about half of 9.6 s,
    #   4.8 s, is tool time: 4.8 s / 1.2 s per Wikipedia call (§1.2 [Q]) = 4 tool calls = 5 LLM calls; the other
    #   4.8 s / 5 calls = 0.96 s per LLM call ≈ 80 output tokens × 12 ms per decode step (8B bf16 on an A100).
    extra_calls_shape: float = 2.5  # [I] derived by simulation: the shape r of the negative binomial (r = 1 is
    #   geometric) fixes the tail. Session latency ≈ Σ(0.012 s × output tokens) + Σ tool latencies, 400k draws:
    #   r = 1 → p95/mean 2.64, r = 2 → 2.26, r = 2.5 → 2.17 (mean 9.58 s, p95 20.8 s), r = 3 → 2.11.
    #   Target: paper §2.2 p95 20.7 s [F] / mean 9.6 s [Q] = 2.16. N's own p95 is 10 calls.

    # per call
    output_mean_tokens: float = 80.0  # assumption: thought + action per call; paper §2.4 says per-call output is
    #   shorter than CoT's [Q]; consistent with 0.96 s per call at ~12 ms per token (see extra_calls_mean).
    output_sigma: float = 0.5  # assumption: moderate spread of thought length
    observation_mean_tokens: float = 550.0  # [I] derived: paper §2.4 the input grows 3–4× from ~1,000 tokens [Q];
    #   over a mean session of 5 calls the 5th prompt is 1,000 + 4 × (80 output + 550 observation) = 3,520 tokens,
    #   3.5× the first. Check: the mean input over those 5 calls is 2,260 ≤ Fig. 8's 2,700-token axis [F].
    observation_sigma: float = 0.7  # assumption: a Wikipedia search returns a page's opening paragraphs, a lookup a
    #   sentence, a miss a short "Could not find ..." list, so observation lengths vary widely.
    tool_latency_mean_s: float = 1.2  # [Q] paper §1.2: Wikipedia API calls "take an average of 1.2 seconds"
    tool_latency_sigma: float = 0.5  # assumption: no published distribution of Wikipedia API latency (traces-survey §4.5)
    tool: str = "wikipedia"  # paper §1.2: HotpotQA's tool is the Wikipedia API (search, lookup)
    max_segment_tokens: int = MAX_SEGMENT_TOKENS  # assumption: see MAX_SEGMENT_TOKENS

    def __post_init__(self) -> None:
        n = self.name
        _require_int(n, self, "iteration_budget", 1)
        _require_int(n, self, "fewshot", 0)
        _require(n, "stuck_fraction", self.stuck_fraction,
                 _is_real(self.stuck_fraction) and 0 <= self.stuck_fraction <= 1, "a probability in [0, 1]")
        _require_int(n, self, "instruction_tokens", 1)
        _require_int(n, self, "fewshot_example_tokens", 0)
        _require_int(n, self, "min_llm_calls", 1)
        _require_int(n, self, "max_segment_tokens", 1)
        _require(n, "extra_calls_mean", self.extra_calls_mean,
                 _is_real(self.extra_calls_mean) and self.extra_calls_mean >= 0, "a finite number >= 0")
        _require_positive(n, self, ("extra_calls_shape", "question_mean_tokens", "output_mean_tokens",
                                    "observation_mean_tokens", "tool_latency_mean_s"))
        _require_sigma(n, self, ("question_sigma", "output_sigma", "observation_sigma", "tool_latency_sigma"))
        _require(n, "tool", self.tool, isinstance(self.tool, str) and self.tool != "", "a non-empty tool name")

    @property
    def shared_prefix(self) -> Segment:
        """The instruction + few-shot block, identical for every session with this few-shot count."""
        tokens = self.instruction_tokens + self.fewshot * self.fewshot_example_tokens
        return Segment(f"{self.name}:sys:fewshot{self.fewshot}", tokens)

    def draw_llm_calls(self, rng: np.random.Generator) -> int:
        """N = min_llm_calls + NegBin(mean extra_calls_mean, shape extra_calls_shape), capped at the budget."""
        if self.extra_calls_mean > 0:
            r = self.extra_calls_shape
            extra = int(rng.negative_binomial(r, r / (r + self.extra_calls_mean)))  # mean r(1−p)/p = extra_calls_mean
        else:
            extra = 0
        n = self.min_llm_calls + extra
        if self.stuck_fraction > 0 and rng.random() < self.stuck_fraction:
            n = self.iteration_budget
        return min(n, self.iteration_budget)

    def session(self, rng: np.random.Generator, session_id: int, arrival_s: float) -> Session:
        # Draw order (fixed, so one seed gives one session): N, question, N outputs, N−1 tool latencies,
        # N−1 observations; whole arrays per session to keep the rng calls few.
        n_calls = self.draw_llm_calls(rng)
        question = draw_tokens(rng, self.question_mean_tokens, self.question_sigma, self.max_segment_tokens)
        outputs = draw_token_counts(rng, self.output_mean_tokens, self.output_sigma, self.max_segment_tokens, n_calls)
        latencies_s = draw_lognormals(rng, self.tool_latency_mean_s, self.tool_latency_sigma, n_calls - 1)
        observations = draw_token_counts(rng, self.observation_mean_tokens, self.observation_sigma,
                                         self.max_segment_tokens, n_calls - 1)
        prompt: tuple[Segment, ...] = (self.shared_prefix, Segment(f"s{session_id}:q", question))
        nodes: list[Node] = []
        for k in range(n_calls):
            node = 2 * k
            call = LLMCall(id=node, prompt=prompt, output_tokens=outputs[k], output_key=f"s{session_id}:o{node}",
                           deps=(node - 1,) if node else ())
            nodes.append(call)
            if k == n_calls - 1:
                break  # the last call emits Finish: no tool after it
            tool_node = node + 1
            nodes.append(ToolCall(id=tool_node, tool=self.tool, latency_s=latencies_s[k], deps=(node,)))
            prompt = prompt + (call.output_segment, Segment(f"s{session_id}:t{tool_node}", observations[k]))
        return Session(id=session_id, agent=self.name, arrival_s=float(arrival_s), nodes=tuple(nodes))


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
        _require_int(self.name, self, "prompt_tokens", 1)
        _require_int(self.name, self, "output_tokens", 1)

    def session(self, rng: np.random.Generator, session_id: int, arrival_s: float) -> Session:
        call = LLMCall(id=0, prompt=(Segment(f"s{session_id}:q", int(self.prompt_tokens)),),
                       output_tokens=int(self.output_tokens), output_key=f"s{session_id}:o0")
        return Session(id=session_id, agent=self.name, arrival_s=float(arrival_s), nodes=(call,))


# --- registry -----------------------------------------------------------------------------------

AGENTS: dict[str, type] = {
    ChatbotShareGPT.name: ChatbotShareGPT,
    ReactHotpotQA.name: ReactHotpotQA,
    FixedCall.name: FixedCall,
}


def make_agent(name: str, **knobs: object) -> Agent:
    """The generator registered as ``name``, with ``knobs`` overriding its default fields."""
    cls = AGENTS.get(name)
    if cls is None:
        raise InputError(f"agent {name!r}: unknown agent: expected one of {', '.join(sorted(AGENTS))}")
    valid = [f.name for f in fields(cls)]
    unknown = sorted(k for k in knobs if k not in valid)
    if unknown:
        raise InputError(f"agent {name}: unknown knob {', '.join(unknown)}: expected one of {', '.join(valid)}")
    return cls(**knobs)


def generate_sessions(agent: Agent, rng: np.random.Generator, arrivals: Iterable[float], *,
                      first_id: int = 0) -> Iterator[Session]:
    """Stream one session per arrival time, with ids ``first_id, first_id + 1, ...``."""
    for i, t in enumerate(arrivals):
        yield agent.session(rng, first_id + i, t)
