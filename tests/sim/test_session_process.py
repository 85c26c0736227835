"""The session process (sim/session.py) on a fake replica and router: the order and times of a
DAG's LLM and tool calls (parallel branches, a join, a chain), the rows it records, its counters,
and a dropped call abandoning the rest of the session."""
from __future__ import annotations

import math

import pytest
import simpy

from agentwatt.sim.metrics import Recorder, RunCounts
from agentwatt.sim.session import SessionContext, run_session
from agentwatt.traces.schema import LLMCall, Segment, Session, ToolCall


class FakeReplica:
    """Serves every call alone in ``call_s`` seconds (first token half-way), 1 J per output token;
    logs submissions and tool waits. ``drop`` lists node ids it drops (never admits)."""

    def __init__(self, env: simpy.Environment, index: int = 0, call_s: float = 1.0, drop: tuple = ()) -> None:
        self.env, self.index, self.call_s, self.drop = env, index, call_s, drop
        self.state = None
        self.log: list[tuple] = []

    def submit(self, req) -> None:
        self.log.append(("submit", req.tag[1], self.env.now))
        self.env.process(self._serve(req))

    def _serve(self, req):
        if req.tag[1] in self.drop:
            req.done.succeed(req)      # dropped: no first token, no finish
            return
        yield self.env.timeout(self.call_s / 2)
        req.first_token_s = self.env.now
        yield self.env.timeout(self.call_s / 2)
        req.finish_s = self.env.now
        req.num_generated = req.output_len
        req.energy_j = float(req.output_len)
        req.done.succeed(req)

    def tool_wait_begins(self, state: dict) -> None:
        self.log.append(("tool begins", None, self.env.now))

    def tool_wait_ends(self, state: dict) -> None:
        self.log.append(("tool ends", None, self.env.now))


class FakeRouter:
    def __init__(self, replica: FakeReplica) -> None:
        self.replica = replica
        self.forgotten: list[int] = []

    def route(self, session_id: int):
        return self.replica

    def forget(self, session_id: int) -> None:
        self.forgotten.append(session_id)


def llm(i: int, deps: tuple, prompt: int = 10, out: int = 5) -> LLMCall:
    return LLMCall(id=i, prompt=(Segment("sys", prompt),), output_tokens=out, output_key=f"s0:o{i}", deps=deps)


def run_one(session: Session, **fake):
    env = simpy.Environment()
    rep = FakeReplica(env, **fake)
    router = FakeRouter(rep)
    rec = Recorder()
    ctx = SessionContext(env, router, rec, block_size=16, prefix_caching=False)
    env.process(run_session(ctx, session))
    env.run()
    return env, rep, router, ctx, rec.calls_frame(), rec.sessions_frame()


def test_dag_with_a_tool_and_parallel_branches():
    #   0 (LLM) ─┬─ 1 (tool, 2 s) ─┬─ 3 (LLM)
    #            └─ 2 (LLM) ───────┘
    s = Session(id=7, agent="fake", arrival_s=0.0,
                nodes=(llm(0, ()), ToolCall(id=1, tool="search", latency_s=2.0, deps=(0,)),
                       llm(2, (0,), out=4), llm(3, (1, 2), out=6)))
    env, rep, router, ctx, calls, sessions = run_one(s)
    submits = [(n, t) for kind, n, t in rep.log if kind == "submit"]
    assert submits == [(0, 0.0), (2, 1.0), (3, 3.0)]           # 3 waits for the tool (3 s), not for 2 (2 s)
    tools = [(kind, t) for kind, _, t in rep.log if kind.startswith("tool")]
    assert tools == [("tool begins", 1.0), ("tool ends", 3.0)]  # charged to the replica holding the context
    assert list(calls["node_id"]) == [0, 2, 3]                  # rows in order of finishing
    assert list(calls["submit_s"]) == [0.0, 1.0, 3.0]
    assert list(calls["first_token_s"]) == [0.5, 1.5, 3.5]
    assert list(calls["finish_s"]) == [1.0, 2.0, 4.0]
    assert set(calls["status"]) == {"finished"} and set(calls["session_id"]) == {7}
    row = sessions.iloc[0]
    assert row["finish_s"] == 4.0 and env.now == 4.0
    assert (row["n_llm_calls"], row["n_tool_calls"], row["tool_time_s"]) == (3, 1, 2.0)
    assert (row["prompt_tokens"], row["output_tokens"], row["energy_j"]) == (30, 15, 15.0)
    assert row["status"] == "finished" and row["idle_energy_j"] == 0.0
    assert router.forgotten == [7]
    assert ctx.counts() == RunCounts(sessions_arrived=1, sessions_finished=1, sessions_dropped=0,
                                     sessions_in_flight=0, calls_submitted=3, calls_finished=3, calls_dropped=0)


def test_a_chain_runs_its_nodes_in_turn():
    s = Session(id=1, agent="fake", arrival_s=0.0,
                nodes=(llm(0, ()), ToolCall(id=1, tool="calc", latency_s=0.5, deps=(0,)), llm(2, (1,))))
    env, rep, _, _, calls, sessions = run_one(s, call_s=2.0)
    assert rep.log == [("submit", 0, 0.0), ("tool begins", None, 2.0), ("tool ends", None, 2.5),
                       ("submit", 2, 2.5)]
    assert list(calls["finish_s"]) == [2.0, 4.5]
    assert sessions.iloc[0]["finish_s"] == 4.5 and sessions.iloc[0]["tool_time_s"] == 0.5


def test_a_dropped_call_abandons_the_rest_of_the_session():
    s = Session(id=3, agent="fake", arrival_s=0.0,
                nodes=(llm(0, ()), ToolCall(id=1, tool="search", latency_s=1.0, deps=(0,)), llm(2, (1,)),
                       llm(3, (0,))))
    env, rep, router, ctx, calls, sessions = run_one(s, drop=(0,))
    assert [e for e in rep.log if e[0] == "submit"] == [("submit", 0, 0.0)]   # nothing after the drop
    assert not any(e[0].startswith("tool") for e in rep.log)
    assert list(calls["status"]) == ["dropped"] and math.isnan(calls.iloc[0]["finish_s"])
    row = sessions.iloc[0]
    assert row["status"] == "dropped" and math.isnan(row["finish_s"])
    assert ctx.counts().sessions_dropped == 1 and ctx.counts().calls_dropped == 1
    assert ctx.active_sessions == 0 and router.forgotten == [3]


def test_the_idle_event_fires_when_the_last_session_ends():
    env = simpy.Environment()
    rep = FakeReplica(env)
    ctx = SessionContext(env, FakeRouter(rep), Recorder(), block_size=16, prefix_caching=False)
    ctx.idle_event = env.event()
    env.process(run_session(ctx, Session(id=0, agent="fake", arrival_s=0.0, nodes=(llm(0, ()),))))
    env.process(run_session(ctx, Session(id=1, agent="fake", arrival_s=0.0,
                                         nodes=(llm(0, ()), ToolCall(id=1, tool="t", latency_s=0.5, deps=(0,))))))
    env.run(until=ctx.idle_event)
    assert env.now == pytest.approx(1.5) and ctx.sessions_finished == 2
