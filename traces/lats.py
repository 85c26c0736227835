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
3. **join**, then the value function reads the children's scores (paper Fig. 3(d): "Evaluate" per
   child, "select child"): a child that reached the right answer wins (stop, solved); else a wrong
   Finish that the value function scored as a solution ends the search with that answer (stop,
   unsolved: the agent cannot tell, the paper's accuracy is scored afterwards); else a wrong Finish
   the value function pruned, or a path that reached ``max_depth``, is a failed terminal: a
   reflection LLM call, and the search restarts from the root with the reflection in every later
   prompt; otherwise descend into one child (the path grows by one step).

The context holds only the root-to-node path (paper §2.4 [Q]), so prompts do not grow beyond
``max_depth`` steps. The sequential budget is the number of reflections (paper Fig. 16(b) [F]: LATS's
sequential knob is "max reflection steps", 4–512): the search stops at the failed terminal that would
need reflection ``max_reflections + 1``, or after ``max_iterations`` iterations (a safety cap).

Why width cuts latency (paper §2.8 [Q]: 1 → 16 children "+14.4 percentage points while
simultaneously reducing latency by 196.3s on average"): every per-child chance below is a chance per
sample, and the n samples of one expansion count as n ** ``sample_diversity`` independent tries, so a
wider expansion reaches *some* end — the right answer on a solvable task, an accepted wrong answer
on any task — in fewer iterations; and since the value function prefers a right answer to a wrong one
found in the same iteration, the right one wins more often when more candidates are looked at
(accuracy rises). A wide iteration takes longer (16 samples decode together, the slowest of 16
tools), which the simulation charges as it comes.

Success odds (assumptions, sources beside each default): a task is solvable with probability
``solvable_fraction``; per iteration each child of a solvable task reaches the right answer with
probability ``child_success_prob``; each child is a wrong Finish the value function accepts with
probability ``false_finish_prob``, and a wrong Finish it prunes with probability ``terminal_prob``.
``outcome`` gives the exact accuracy and expected iterations of this chain (no sampling).
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
    max_reflections: int = 5  # the sequential budget: [F] Fig. 16(b)'s LATS knob is "max reflection steps" (4–512);
    #   [I] 5 with the odds below gives Fig. 4's ~71 LLM calls per request (expected 71.4 calls: 13.6 iterations × 5
    #   calls + 3.4 reflections, exact chain of ``outcome``); the paper does not state Fig. 4's LATS setting
    max_iterations: int = 1000  # a safety cap; the search ends on an answer or on the reflection budget first
    max_depth: int = 7  # assumption: a trajectory of at most 7 steps before it counts as a failed terminal
    solvable_fraction: float = 0.8  # [I] paper Table III: 8B LATS reaches 80 % accuracy at its best setting [Q]; the
    #   widest expansion (16 children, Fig. 16(c)) at the width sweep's budget reaches 79.4 % (``accuracy``)
    child_success_prob: float = 0.01  # [I] per sample and iteration; with sample_diversity and terminal_prob chosen
    #   (grid search over the exact chain, then the single-request estimate on 150 sessions) so that, at the width
    #   sweep's budget (32 reflections, paper/scaling.py), 1 → 16 children raises accuracy by ~15 pp (paper §2.8 [Q]:
    #   +14.4 pp) and cuts mean latency by ~190 s (paper: 196.3 s), while Fig. 4's default keeps ~71 calls
    sample_diversity: float = 0.875  # [I] see child_success_prob: n samples of one prompt count as n ** 0.875
    #   independent tries (samples of one prompt are correlated, so < 1; 0.5 cannot reach the paper's drop: at most
    #   4 tries from 16 samples, while a 16-wide iteration takes ~2x as long as a 1-wide one)
    terminal_prob: float = 0.12  # [I] see child_success_prob: chance that one sample is a wrong Finish that the
    #   value function prunes (a failed terminal: reflection and restart). Wider iterations hit failed terminals
    #   sooner, so an unsolved task spends its reflection budget in fewer iterations: 163 → 43 expected iterations
    #   from 1 to 16 children at 32 reflections
    false_finish_prob: float = 0.0  # assumption: the value function never accepts a wrong Finish as a solution
    #   (kept as a knob; > 0 ends unsolved searches early, at any budget)
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
        require_int(agent, self, "max_reflections", 0, 100_000)
        require_int(agent, self, "max_depth", 1, 1000)
        require_int(agent, self, "eval_instruction_tokens", 1)
        require_int(agent, self, "reflection_instruction_tokens", 1)
        require_prob(agent, self, ("solvable_fraction", "child_success_prob", "terminal_prob", "false_finish_prob",
                                          "sample_diversity"))
        require_positive(agent, self, ("eval_output_mean_tokens", "reflection_output_mean_tokens"))
        require_sigma(agent, self, ("eval_output_sigma", "reflection_output_sigma"))
        require(agent, "sample_mode", self.sample_mode, self.sample_mode in SAMPLE_MODES,
                f"one of {', '.join(SAMPLE_MODES)}")

    def tries(self) -> float:
        """The n samples of one expansion as a number of independent tries (n ** sample_diversity)."""
        return self.n_children ** self.sample_diversity

    def success_prob(self) -> float:
        """Chance that one iteration of a solvable task finds the answer."""
        return 1.0 - (1.0 - self.child_success_prob) ** self.tries()

    def false_finish_iteration_prob(self) -> float:
        """Chance that one iteration ends the search on a wrong answer the value function accepted."""
        return 1.0 - (1.0 - self.false_finish_prob) ** self.tries()

    def failed_terminal_prob(self) -> float:
        """Chance that one iteration hits a wrong Finish that the value function pruned."""
        return 1.0 - (1.0 - self.terminal_prob) ** self.tries()

    def outcome(self, solvable: bool = True) -> tuple[float, float]:
        """(chance the search ends on the right answer, expected iterations) for one task, exactly:
        the chain of ``build`` over (depth, reflections used), iteration by iteration."""
        s = self.success_prob() if solvable else 0.0
        a, f = self.false_finish_iteration_prob(), self.failed_terminal_prob()
        d_max, r_max = self.max_depth, self.max_reflections
        alive = np.zeros((d_max, r_max + 1))
        alive[0, 0] = 1.0
        won = iters = 0.0
        for it in range(self.max_iterations):
            mass = alive.sum()
            if mass < 1e-12:
                break
            iters += mass
            won += s * mass
            go = alive * (1 - s) * (1 - a)
            if it == self.max_iterations - 1:
                break
            fail = go * f
            fail[d_max - 1] = go[d_max - 1]                  # the path reached max_depth
            alive = np.zeros_like(alive)
            alive[1:] = (go - fail)[:-1]                     # descend
            alive[0, 1:] += fail[:, :-1].sum(axis=0)         # reflect and restart; the last column stops
        return float(won), float(iters)

    def accuracy(self) -> float:
        """The generator's own accuracy: solvable share × chance the search ends on the right answer."""
        return float(self.solvable_fraction * self.outcome(True)[0])

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
        p_success = self.success_prob()
        p_false, p_terminal = self.false_finish_iteration_prob(), self.failed_terminal_prob()
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
            found = rng.random() < p_success      # drawn for every task, so streams do not depend on solvability
            if (solvable and found) or rng.random() < p_false:
                return                            # an answer the value function accepts: right or wrong
            best = steps[int(rng.integers(len(steps)))]
            failed = rng.random() < p_terminal or len(path) // 2 + 1 >= self.max_depth
            if not failed:
                path.extend(best)
                continue
            if it == self.max_iterations - 1 or len(reflections) >= self.max_reflections:
                return
            out = draw_tokens(rng, self.reflection_output_mean_tokens, self.reflection_output_sigma,
                              task.max_segment_tokens)
            reflection = b.llm(reflect_head + tuple(path) + best, out, deps=deps)
            reflections.append(reflection.output_segment)
            deps = (reflection.id,)
            path = []
