"""LATS: Monte Carlo tree search over ReAct steps (paper §1.1, Fig. 3(d)).

One MCTS iteration at a node of depth d (the path from the root: d chosen actions with their
observations):

1. **expand**: one LLM call whose prompt is [instruction + few-shot] [question] [reflections] [path]
   and which "produces multiple candidate samples" (paper §1.1 [Q]): ``n_children`` samples, so its
   output is n × a step's tokens (paper §2.4 [Q]: LATS's per-call output is "much longer").
   With ``sample_mode = "fan-out"`` the n samples are instead n parallel calls of the same prompt
   (how vLLM serves ``n`` samples: one prefill, n sequences decoding together);
2. **per child, in parallel** (the authors run "concurrent LLM inference and parallel tool
   invocation" [Q]): a tool call, then an evaluation LLM call whose prompt is
   [value instruction] [question] [path] [child action] [child observation]. Siblings share the
   [value instruction][question][path] prefix;
3. **join**, then one of: success (stop); a failed terminal (wrong Finish, or the path reached
   ``max_depth``): a reflection LLM call, and the search restarts from the root with the reflection
   in every later prompt; otherwise descend into one child (the path grows by one step).

The context holds only the root-to-node path (paper §2.4 [Q]), so prompts do not grow beyond
``max_depth`` steps. The search stops at success or after ``max_iterations`` iterations.

Success odds (assumptions): a task is solvable with probability ``solvable_fraction``; in one
iteration each child of a solvable task reaches the right answer with probability
``child_success_prob``, and the n children of one expansion count as n ** ``sample_diversity``
independent tries (samples of one prompt are correlated). Wider expansions therefore finish in fewer
iterations (lower latency) but spend more calls in total (paper §2.8 [Q]: 1 → 16 children raised
accuracy and cut latency, at the cost of more concurrent LLM requests).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agentwatt.traces.builder import DagBuilder
from agentwatt.traces.params import (require, require_int, require_positive, require_prob, require_sigma)
from agentwatt.traces.sampling import draw_tokens
from agentwatt.traces.schema import Segment
from agentwatt.traces.tasks import Task

SAMPLE_MODES = ("one-call", "fan-out")


@dataclass(frozen=True, kw_only=True)
class Lats:
    """LATS knobs; defaults are LATS-HotpotQA's (other benchmarks override them in ``agents``)."""

    n_children: int = 4  # [F] paper Fig. 16(c) sweeps 1, 2, 4, 8, 16 children per expansion; 4 is the middle point
    max_iterations: int = 32  # assumption: a power of two inside Fig. 16(b)'s 4–512 sweep of LATS's sequential knob [F]
    max_depth: int = 7  # assumption: a trajectory of at most 7 steps before it counts as a failed terminal
    solvable_fraction: float = 0.8  # [I] paper Table III: 8B LATS reaches 80 % accuracy at its best setting [Q]
    child_success_prob: float = 0.055  # [I] fitted (3 seeds × 2,000 sessions) so that LATS-HotpotQA averages ~70 LLM
    #   calls per request: paper §2.1 [Q] "an average of 71.0"; the bars read "60+" on HotpotQA and ~180 on WebShop [S],
    #   MATH/HumanEval are bounded by 36 and 8 [F], so 71.0 may also be the four-benchmark mean: (70 + 181 + 29 + 6) / 4
    #   = 71.5 with the other presets (agents.py).
    sample_diversity: float = 0.5  # assumption: n samples of one prompt count as n ** 0.5 independent tries
    terminal_prob: float = 0.08  # assumption: chance that one child is a wrong Finish (a failed terminal)
    sample_mode: str = "one-call"  # "one-call" (paper's call count, Fig. 4/8) or "fan-out" (n parallel calls)
    eval_instruction_tokens: int = 600  # assumption: value prompt with scored example trajectories
    eval_output_mean_tokens: float = 40.0  # assumption: a short critique and a score
    eval_output_sigma: float = 0.4  # assumption
    reflection_instruction_tokens: int = 400  # assumption: as Reflexion's reflection prompt
    reflection_output_mean_tokens: float = 100.0  # assumption: as Reflexion's
    reflection_output_sigma: float = 0.4  # assumption

    def validate(self, agent: str, task: Task) -> None:
        require_int(agent, self, "n_children", 1, 256)
        require_int(agent, self, "max_iterations", 1, 100_000)
        require_int(agent, self, "max_depth", 1, 1000)
        require_int(agent, self, "eval_instruction_tokens", 1)
        require_int(agent, self, "reflection_instruction_tokens", 1)
        require_prob(agent, self, ("solvable_fraction", "child_success_prob", "terminal_prob", "sample_diversity"))
        require_positive(agent, self, ("eval_output_mean_tokens", "reflection_output_mean_tokens"))
        require_sigma(agent, self, ("eval_output_sigma", "reflection_output_sigma"))
        require(agent, "sample_mode", self.sample_mode, self.sample_mode in SAMPLE_MODES,
                f"one of {', '.join(SAMPLE_MODES)}")

    def success_prob(self) -> float:
        """Chance that one iteration of a solvable task finds the answer."""
        return 1.0 - (1.0 - self.child_success_prob) ** (self.n_children ** self.sample_diversity)

    def failed_terminal_prob(self) -> float:
        """Chance that one iteration hits a wrong Finish among its children."""
        return 1.0 - (1.0 - self.terminal_prob) ** (self.n_children ** self.sample_diversity)

    def _expand(self, b: DagBuilder, rng: np.random.Generator, task: Task, prompt: tuple[Segment, ...],
                deps: tuple[int, ...]) -> list[tuple[Segment, int]]:
        """The expansion call(s): (child action segment, node the child's tool waits for) per child."""
        samples = [task.draw_step_output(rng) for _ in range(self.n_children)]
        if self.sample_mode == "fan-out":
            calls = [b.llm(prompt, s, deps=deps) for s in samples]
            return [(c.output_segment, c.id) for c in calls]
        call = b.llm(prompt, sum(samples), deps=deps)
        return [(b.segment(f"o{call.id}.{j}", s), call.id) for j, s in enumerate(samples)]

    def build(self, b: DagBuilder, agent: str, task: Task, rng: np.random.Generator) -> None:
        solvable = rng.random() < self.solvable_fraction
        p_success, p_terminal = self.success_prob(), self.failed_terminal_prob()
        question = b.segment("q", task.draw_question(rng))
        head = (task.shared_prefix(agent), question)
        value_head = (Segment(f"{agent}:value", self.eval_instruction_tokens), question)
        reflect_head = (Segment(f"{agent}:reflect", self.reflection_instruction_tokens), question)
        deps: tuple[int, ...] = ()
        if task.test_generation:  # HumanEval: tests are written once, by the LLM, before the search
            tests = b.llm((Segment(f"{agent}:testgen", task.testgen_instruction_tokens), question),
                          task.draw_testgen_output(rng))
            deps = (tests.id,)
        path: list[Segment] = []
        reflections: list[Segment] = []
        for it in range(self.max_iterations):
            children = self._expand(b, rng, task, head + tuple(reflections) + tuple(path), deps)
            ends, steps = [], []
            for action, after in children:
                name, latency_s = task.draw_tool(rng)
                tool = b.tool(name, latency_s, deps=(after,))
                obs = b.observation(tool, task.draw_observation(rng))
                out = draw_tokens(rng, self.eval_output_mean_tokens, self.eval_output_sigma, task.max_segment_tokens)
                ends.append(b.llm(value_head + tuple(path) + (action, obs), out, deps=(tool.id,)).id)
                steps.append((action, obs))
            deps = tuple(ends)
            if solvable and rng.random() < p_success:
                return
            best = steps[int(rng.integers(len(steps)))]
            failed = rng.random() < p_terminal or len(path) // 2 + 1 >= self.max_depth
            if not failed:
                path.extend(best)
                continue
            if it == self.max_iterations - 1:
                return
            out = draw_tokens(rng, self.reflection_output_mean_tokens, self.reflection_output_sigma,
                              task.max_segment_tokens)
            reflection = b.llm(reflect_head + tuple(path) + best, out, deps=deps)
            reflections.append(reflection.output_segment)
            deps = (reflection.id,)
            path = []
