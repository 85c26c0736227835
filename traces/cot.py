"""Chain-of-thought: one LLM call, no tools (paper §1.1 [Q]: "CoT performs only a single LLM inference
per request"), and self-consistency: n CoT samples of the same prompt, in parallel waves, with an
early stop when a wave's answers agree.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agentwatt.traces.builder import DagBuilder
from agentwatt.traces.params import require_int, require_prob
from agentwatt.traces.tasks import Task


@dataclass(frozen=True, kw_only=True)
class CoT:
    """One call: shared instruction + few-shot block, the question, then the whole reasoning chain."""

    def validate(self, agent: str, task: Task) -> None:
        pass

    def build(self, b: DagBuilder, agent: str, task: Task, rng: np.random.Generator) -> None:
        question = b.segment("q", task.draw_question(rng))
        b.llm((task.shared_prefix(agent), question), task.draw_answer(rng))


@dataclass(frozen=True, kw_only=True)
class SelfConsistency:
    """``n_samples`` CoT samples of one prompt (identical prompts: the whole prompt is a shared prefix).

    Samples run in waves of ``wave_size`` parallel calls (0 = all at once); after a wave, with
    probability ``agree_prob`` the answers so far agree and the rest are skipped (early stop).
    Parallel width is ``wave_size``; the sample budget is ``n_samples``.
    """

    n_samples: int = 8  # assumption: a common self-consistency budget; a test-time-scaling knob like LATS's
    #   parallel width (paper §2.8: 1–16 children, Fig. 16(c) [F]); the paper itself runs no self-consistency agent
    wave_size: int = 0  # 0 = every sample in one parallel wave (no early stop)
    agree_prob: float = 0.5  # assumption: chance that a wave's majority is already decisive (no source)

    def validate(self, agent: str, task: Task) -> None:
        require_int(agent, self, "n_samples", 1, 1024)
        require_int(agent, self, "wave_size", 0, 1024)
        require_prob(agent, self, ("agree_prob",))

    def build(self, b: DagBuilder, agent: str, task: Task, rng: np.random.Generator) -> None:
        question = b.segment("q", task.draw_question(rng))
        prompt = (task.shared_prefix(agent), question)
        wave = self.wave_size or self.n_samples
        left = self.n_samples
        deps: tuple[int, ...] = ()
        while left > 0:
            width = min(wave, left)
            deps = tuple(b.llm(prompt, task.draw_answer(rng), deps=deps).id for _ in range(width))
            left -= width
            if left > 0 and rng.random() < self.agree_prob:
                break
