"""Single-request latency of a session without the simulator: the paper's "one request at a time"
measurement mode (paper §1.5, Fig. 5/7), estimated from a profile's step-time model.

One LLM call served alone = one prefill step for the prompt tokens not already cached + one decode
step per output token (``LatencyModel.step_s`` with a batch of one). Tool calls take their recorded
latency. Parallel branches overlap: the session's latency is the critical path of its DAG (a node
starts when its last dependency ends). Simplifications, all optimistic by a little:

* parallel LLM calls (LATS children) do not slow each other down (a batch of a few sequences
  decodes in about the time of one: decode is memory-bound, paper §2.3);
* the prompt is prefilled in one step (no 2,048-token chunking);
* prefix caching (on in every paper run, paper §1.3) is unbounded within the session and works at
  whole-segment granularity, rounded down to ``block_size`` tokens; calls are visited in node order,
  so a sibling reuses the prefix an earlier sibling computed.
"""
from __future__ import annotations

from typing import Sequence

from agentwatt.core.profile import LatencyModel
from agentwatt.core.step import single_call_s
from agentwatt.traces.schema import LLMCall, Segment, Session


def llm_call_s(model: LatencyModel, prompt_tokens: int, cached_tokens: int, output_tokens: int) -> float:
    """Seconds for one call served alone (``core/step.py`` ``single_call_s``)."""
    return single_call_s(model, prompt_tokens, cached_tokens, output_tokens)


def prefix_chain(segments: Sequence[Segment]) -> list[tuple[int, int]]:
    """(chained hash, tokens up to and including this segment) for each segment of a sequence."""
    out = []
    h = 0
    total = 0
    for s in segments:
        h = hash((h, s.key, s.tokens))
        total += s.tokens
        out.append((h, total))
    return out


def cached_prefix_tokens(seen: set[int], prompt: Sequence[Segment], block_size: int) -> int:
    """Tokens of the longest run of leading segments already in ``seen``, rounded down to whole blocks."""
    hit = 0
    for h, total in prefix_chain(prompt):
        if h not in seen:
            break
        hit = total
    return hit - hit % block_size


def call_durations_s(session: Session, model: LatencyModel, *, prefix_caching: bool = True,
                     block_size: int = 16) -> list[float]:
    """Seconds each node takes when the session runs alone (tools: their latency)."""
    seen: set[int] = set()
    out = []
    for node in session.nodes:
        if isinstance(node, LLMCall):
            cached = cached_prefix_tokens(seen, node.prompt, block_size) if prefix_caching else 0
            out.append(llm_call_s(model, node.prompt_tokens, cached, node.output_tokens))
            if prefix_caching:
                seen.update(h for h, _ in prefix_chain((*node.prompt, node.output_segment)))
        else:
            out.append(node.latency_s)
    return out


def critical_path_s(session: Session, durations: Sequence[float]) -> float:
    """End time of the last node when every node starts as soon as its dependencies end."""
    end: list[float] = []
    for node, d in zip(session.nodes, durations):
        start = max((end[i] for i in node.deps), default=0.0)
        end.append(start + d)
    return max(end)


def single_request_latency_s(session: Session, model: LatencyModel, *, prefix_caching: bool = True,
                             block_size: int = 16) -> float:
    """Estimated end-to-end seconds of ``session`` served alone (see the module notes)."""
    return critical_path_s(session, call_durations_s(session, model, prefix_caching=prefix_caching,
                                                     block_size=block_size))
