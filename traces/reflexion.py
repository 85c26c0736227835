"""Reflexion: ReAct trials with verbal self-reflection in between (paper §1.1, Fig. 3(c)).

A trial is a ReAct loop (``react.react_trial``) capped at ``iteration_budget`` calls. When a trial
fails and reflections remain, a reflection LLM call reads the question and the failed trial and
writes a short lesson; the next trial's prompt is

    [instruction + few-shot] [question] [reflections so far] [last trial] [current trial]

(paper §1.1 [Q]: "[Previous reflections] + [Last trial] + [Current trial]"). The session ends at the
first successful trial or after ``max_reflections`` reflections (``max_reflections + 1`` trials).

Success: a task is solvable with probability ``solvable_fraction``; each trial of a solvable task
succeeds with probability ``trial_success_prob`` (both assumptions; the paper gives accuracies, not
per-trial odds). Unsolvable tasks use every trial, so raising ``max_reflections`` (paper Fig. 16(a):
2–32) stretches the tail while the solvable tasks stop early.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agentwatt.traces.builder import DagBuilder
from agentwatt.traces.params import require_int, require_positive, require_prob, require_sigma
from agentwatt.traces.react import React, react_trial
from agentwatt.traces.sampling import draw_tokens
from agentwatt.traces.schema import Segment
from agentwatt.traces.tasks import Task


@dataclass(frozen=True, kw_only=True)
class Reflexion(React):
    """Reflexion knobs on top of ReAct's; ``iteration_budget`` is the per-trial step cap."""

    iteration_budget: int = 5  # [I] paper §5: the repo's Reflexion config has iteration_limit 10 LangGraph steps (5 in
    #   its README); one ReAct step is two graph steps (paper §1.1) → 5 LLM calls per trial
    stuck_fraction: float = 0.0  # a trial that fails simply ends; looping is covered by the trial cap
    max_reflections: int = 3  # [I] paper §5: the repo's Reflexion reflection_limit is 3; Fig. 16(a) sweeps 2–32 [F]
    solvable_fraction: float = 0.4  # [I] paper Table III: 8B Reflexion reaches 38 % accuracy at its best setting [Q],
    #   so about 40 % of tasks can be solved at all
    trial_success_prob: float = 0.5  # [I] chosen so that the expected trials grow 1.51× from 2 to 4 reflections:
    #   0.6 × 3 + 0.4 × 1.75 = 2.5 → 0.6 × 5 + 0.4 × 1.94 = 3.78, as latency grows 16.9 → 25.6 s (1.51×) between
    #   the first two points of Fig. 16(a) (paper §2.8 [Q]; mapping those values to 2 and 4 reflections is our reading)
    reflection_instruction_tokens: int = 400  # assumption: reflection instruction + one example reflection
    reflection_output_mean_tokens: float = 100.0  # assumption: a few sentences of diagnosis and plan
    reflection_output_sigma: float = 0.4  # assumption

    def validate(self, agent: str, task: Task) -> None:
        super().validate(agent, task)
        require_int(agent, self, "max_reflections", 0, 1024)
        require_int(agent, self, "reflection_instruction_tokens", 1)
        require_prob(agent, self, ("solvable_fraction", "trial_success_prob"))
        require_positive(agent, self, ("reflection_output_mean_tokens",))
        require_sigma(agent, self, ("reflection_output_sigma",))

    def build(self, b: DagBuilder, agent: str, task: Task, rng: np.random.Generator) -> None:
        solvable = rng.random() < self.solvable_fraction
        question = b.segment("q", task.draw_question(rng))
        head = (task.shared_prefix(agent), question)
        reflect_head = (Segment(f"{agent}:reflect", self.reflection_instruction_tokens), question)
        reflections: list[Segment] = []
        last_trial: tuple[Segment, ...] = ()
        deps: tuple[int, ...] = ()
        write_tests = task.test_generation
        for trial in range(self.max_reflections + 1):
            n_calls, stuck = self.draw_llm_calls(rng, task)
            prefix = head + tuple(reflections) + last_trial
            end, transcript, write_tests = react_trial(
                b, rng, agent, task, prefix, question, n_calls, deps,
                output_scale=self.stuck_output_scale if stuck else 1.0, write_tests=write_tests)
            if (solvable and rng.random() < self.trial_success_prob) or trial == self.max_reflections:
                return
            out = draw_tokens(rng, self.reflection_output_mean_tokens, self.reflection_output_sigma,
                              task.max_segment_tokens)
            reflection = b.llm(reflect_head + transcript, out, deps=(end,))
            reflections.append(reflection.output_segment)
            last_trial = transcript
            deps = (reflection.id,)
