"""A small helper that assembles one session's DAG while a generator draws it.

Every generator (ReAct, Reflexion, LATS, ...) adds nodes in topological order through a
``DagBuilder``; it hands out node ids (``0, 1, ...``) and the session's segment keys, so that all
generators name content the same way (``traces.schema``):

* ``s{id}:q``        the user question of session ``id``,
* ``s{id}:o{node}``  the output of LLM call ``node`` (``LLMCall.output_key``),
* ``s{id}:t{node}``  the observation returned by tool call ``node``,
* ``s{id}:{tag}``    any other per-session content (``DagBuilder.key``).

Keys without the ``s{id}:`` prefix (instruction and few-shot blocks) are shared across sessions.
The builder is mutable but lives only inside one ``session()`` call.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from agentwatt.traces.schema import LLMCall, Node, Segment, Session, ToolCall


class DagBuilder:
    """Collects the nodes of one session in topological order."""

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id
        self.nodes: list[Node] = []

    def key(self, tag: str) -> str:
        """A segment key private to this session."""
        return f"s{self.session_id}:{tag}"

    def segment(self, tag: str, tokens: int) -> Segment:
        return Segment(self.key(tag), int(tokens))

    def llm(self, prompt: Sequence[Segment], output_tokens: int, deps: Iterable[int] = ()) -> LLMCall:
        node = len(self.nodes)
        call = LLMCall(id=node, prompt=tuple(prompt), output_tokens=int(output_tokens),
                       output_key=self.key(f"o{node}"), deps=tuple(sorted(set(deps))))
        self.nodes.append(call)
        return call

    def tool(self, tool: str, latency_s: float, deps: Iterable[int] = ()) -> ToolCall:
        node = len(self.nodes)
        call = ToolCall(id=node, tool=tool, latency_s=float(latency_s), deps=tuple(sorted(set(deps))))
        self.nodes.append(call)
        return call

    def observation(self, tool: ToolCall, tokens: int) -> Segment:
        """The tokens tool call ``tool`` returns, as a segment a later prompt can include."""
        return Segment(self.key(f"t{tool.id}"), int(tokens))

    def session(self, agent: str, arrival_s: float) -> Session:
        return Session(id=self.session_id, agent=agent, arrival_s=float(arrival_s), nodes=tuple(self.nodes))
