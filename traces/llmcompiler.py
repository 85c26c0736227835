"""LLMCompiler: a planner call emits a DAG of tool calls that run in parallel, then a joiner call
finishes or asks for a new plan (paper §1.1, Fig. 3(e)).

One round:

1. **plan**: one LLM call, prompt [instruction + few-shot] [question] [earlier rounds], output
   ``plan_step_tokens`` per planned tool call ("multiple dependent tool calls ... within a single LLM
   invocation", paper §1.1 [Q]);
2. **tools**: k calls (k = 1 + Poisson(``tools_per_plan_mean`` − 1)); each depends on the planner
   and, with probability ``dependent_share``, also on one earlier tool of the same plan (a ``$1``
   argument); the rest run in parallel;
3. **join**: one LLM call reading [joiner instruction] [question] [plan] [all observations], which
   decides Finish or Replan; with probability ``replan_prob`` (at most ``max_replans`` times) a new
   round starts with the earlier plan, observations and joiner thought in its prompt.

The real system streams tool calls to its scheduler while the planner is still generating; the DAG
here starts them when the plan is complete. The paper measures that overlap at "only 18.2 % of
total latency" [Q], the size of the error this makes at most.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agentwatt.traces.builder import DagBuilder
from agentwatt.traces.params import require_int, require_positive, require_prob, require_sigma, require
from agentwatt.traces.sampling import draw_tokens
from agentwatt.traces.schema import Segment
from agentwatt.traces.tasks import Task


@dataclass(frozen=True, kw_only=True)
class LLMCompiler:
    """LLMCompiler knobs; defaults are LLMCompiler-HotpotQA's."""

    tools_per_plan_mean: float = 2.5  # assumption: a two-hop question plans a search per entity plus the odd lookup
    dependent_share: float = 0.3  # assumption: share of planned calls that need an earlier call's result
    plan_step_tokens: float = 45.0  # assumption: one planned call "1. search(Foo)" with a short thought
    plan_step_sigma: float = 0.4  # assumption
    replan_prob: float = 0.25  # assumption: the joiner replans a quarter of the time (no published rate)
    max_replans: int = 2  # assumption: at most three rounds
    joiner_instruction_tokens: int = 500  # assumption: joiner instruction + examples of Finish/Replan
    joiner_output_mean_tokens: float = 60.0  # assumption: a thought and Finish[answer] or Replan
    joiner_output_sigma: float = 0.4  # assumption

    def validate(self, agent: str, task: Task) -> None:
        require_positive(agent, self, ("tools_per_plan_mean", "plan_step_tokens", "joiner_output_mean_tokens"))
        require(agent, "tools_per_plan_mean", self.tools_per_plan_mean, self.tools_per_plan_mean >= 1,
                "a number >= 1 (a plan calls at least one tool)")
        require_prob(agent, self, ("dependent_share", "replan_prob"))
        require_int(agent, self, "max_replans", 0, 1000)
        require_int(agent, self, "joiner_instruction_tokens", 1)
        require_sigma(agent, self, ("plan_step_sigma", "joiner_output_sigma"))

    def build(self, b: DagBuilder, agent: str, task: Task, rng: np.random.Generator) -> None:
        question = b.segment("q", task.draw_question(rng))
        head = (task.shared_prefix(agent), question)
        join_head = (Segment(f"{agent}:joiner", self.joiner_instruction_tokens), question)
        history: list[Segment] = []
        deps: tuple[int, ...] = ()
        for rnd in range(self.max_replans + 1):
            k = 1 + int(rng.poisson(self.tools_per_plan_mean - 1.0))
            plan_out = sum(draw_tokens(rng, self.plan_step_tokens, self.plan_step_sigma, task.max_segment_tokens)
                           for _ in range(k))
            plan = b.llm(head + tuple(history), plan_out, deps=deps)
            tools, observations = [], []
            for j in range(k):
                tool_deps = [plan.id]
                if j > 0 and rng.random() < self.dependent_share:
                    tool_deps.append(tools[int(rng.integers(j))])
                name, latency_s = task.draw_tool(rng)
                tool = b.tool(name, latency_s, deps=tool_deps)
                tools.append(tool.id)
                observations.append(b.observation(tool, task.draw_observation(rng)))
            out = draw_tokens(rng, self.joiner_output_mean_tokens, self.joiner_output_sigma, task.max_segment_tokens)
            joiner = b.llm(join_head + (plan.output_segment, *observations), out, deps=tools)
            if rnd == self.max_replans or rng.random() >= self.replan_prob:
                return
            history += [plan.output_segment, *observations, joiner.output_segment]
            deps = (joiner.id,)
