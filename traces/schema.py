"""Sessions: an agent task as a DAG of LLM calls and tool calls.

Token *content* is described by segments, not by token ids: a ``Segment(key, tokens)`` stands for
``tokens`` tokens whose content is identified by ``key``. Two prompts that start with the same
segments (same keys, same lengths) share a KV-cache prefix. This is how the simulator sees

* a system prompt / few-shot block shared by every session of one agent type
  (key ``"react-hotpotqa:fewshot3"``),
* a grown context: call k+1's prompt = call k's prompt + call k's output + the tool observation
  (keys ``"s17:o3"`` for session 17's output of node 3, ``"s17:t4"`` for the observation of node 4),
* parallel branches that share their parent's prefix.

Layout of one LLM call's tokens::

    | prompt segments ...................................... | output (output_tokens) |
    | shared with earlier calls / sessions  | new this call  |                        |

Nodes are listed in topological order: ``deps`` refer to ids of earlier nodes, and
``node.id == index`` in ``Session.nodes``. A node starts when all its deps have finished.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from agentwatt.core.errors import InputError


@dataclass(frozen=True, slots=True)
class Segment:
    key: str
    tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMCall:
    id: int
    prompt: tuple[Segment, ...]
    output_tokens: int
    output_key: str
    deps: tuple[int, ...] = ()

    @property
    def prompt_tokens(self) -> int:
        return sum(s.tokens for s in self.prompt)

    @property
    def output_segment(self) -> Segment:
        """The segment a later call appends to its prompt to include this call's output."""
        return Segment(self.output_key, self.output_tokens)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    id: int
    tool: str
    latency_s: float
    deps: tuple[int, ...] = ()


Node = Union[LLMCall, ToolCall]


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    id: int
    agent: str
    arrival_s: float
    nodes: tuple[Node, ...]

    @property
    def llm_calls(self) -> list[LLMCall]:
        return [n for n in self.nodes if isinstance(n, LLMCall)]

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [n for n in self.nodes if isinstance(n, ToolCall)]


def validate_session(s: Session, where: str = "session") -> Session:
    """Check ids, deps and values; raise ``InputError`` naming the session and node."""
    w = f"{where} {s.id}"
    if not s.nodes:
        raise InputError(f"{w}: no nodes: expected at least one LLM call")
    if not (s.arrival_s >= 0.0):
        raise InputError(f"{w}: arrival_s = {s.arrival_s!r}: expected a time >= 0")
    for i, n in enumerate(s.nodes):
        if n.id != i:
            raise InputError(f"{w}: node {i} has id {n.id}: expected ids 0..n-1 in order")
        for d in n.deps:
            if not (0 <= d < i):
                raise InputError(f"{w}: node {i} depends on {d}: expected an earlier node id")
        if isinstance(n, LLMCall):
            if n.output_tokens < 1:
                raise InputError(f"{w}: node {i} output_tokens = {n.output_tokens}: expected >= 1")
            if not n.prompt or any(seg.tokens < 1 for seg in n.prompt):
                raise InputError(f"{w}: node {i}: expected a prompt of segments with tokens >= 1")
        elif isinstance(n, ToolCall):
            if not (n.latency_s >= 0.0) or n.latency_s == float("inf"):
                raise InputError(f"{w}: node {i} tool latency_s = {n.latency_s!r}: expected a finite time >= 0")
        else:
            raise InputError(f"{w}: node {i}: expected an LLMCall or a ToolCall")
    if not s.llm_calls:
        raise InputError(f"{w}: no LLM call: expected at least one")
    return s
