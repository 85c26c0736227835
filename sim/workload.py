"""Where sessions come from: SimPy processes that start sessions at their arrival times.

* open loop, generated: an arrival process (Poisson, diurnal, MMPP, ...) and one agent generator,
  or a ``mix`` of generators drawn by share on one shared arrival process;
* open loop, replayed: a trace file gives sessions and their arrival times;
* given sessions (``run(..., sessions=...)``): replayed at their own arrival times;
* closed loop: ``concurrency`` users each run one session at a time, think, and start the next
  (``concurrency = 1`` is the paper's "one request at a time" measurement mode).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from agentwatt.sim.scenario import WorkloadClass
from agentwatt.sim.session import SessionContext, run_session
from agentwatt.traces.schema import LLMCall, Segment, Session


def relabel(s: Session, new_id: int, arrival_s: float) -> Session:
    """The same session under a run-wide id: segment keys ``s{old}:...`` become ``s{new}:...`` so
    sessions from different sources never share KV content by accident."""
    old = f"s{s.id}:"
    new = f"s{new_id}:"

    def key(k: str) -> str:
        return new + k[len(old):] if k.startswith(old) else k

    nodes = []
    for n in s.nodes:
        if isinstance(n, LLMCall):
            n = LLMCall(id=n.id, prompt=tuple(Segment(key(g.key), g.tokens) for g in n.prompt),
                        output_tokens=n.output_tokens, output_key=key(n.output_key), deps=n.deps)
        nodes.append(n)
    return Session(id=new_id, agent=s.agent, arrival_s=arrival_s, nodes=tuple(nodes))


class _Picker:
    """Draws which agent of a mix the next session is (by share), then its session."""

    def __init__(self, wc: WorkloadClass, rng: np.random.Generator) -> None:
        from agentwatt.traces.agents import make_agent
        self.rng = rng
        if wc.mix:
            names = sorted(wc.mix)
            self.agents = [make_agent(n, **wc.mix_knobs.get(n, {})) for n in names]
            p = np.array([wc.mix[n] for n in names], dtype=float)
            self.cum = np.cumsum(p / p.sum())
        else:
            self.agents = [make_agent(wc.agent, **wc.knobs)]
            self.cum = np.array([1.0])

    def session(self, ctx: SessionContext, t: float) -> Session:
        i = 0 if len(self.agents) == 1 else int(np.searchsorted(self.cum, self.rng.random(), side="right"))
        sid = ctx.next_session_id
        ctx.next_session_id += 1
        return self.agents[min(i, len(self.agents) - 1)].session(self.rng, sid, t)


def _arrival_times(wc: WorkloadClass, rng: np.random.Generator, end_s: float) -> Iterator[float]:
    from agentwatt.traces import arrivals
    if hasattr(arrivals, "make_arrivals"):
        params = dict(wc.arrival_params)
        if wc.rate_per_s is not None:
            params.setdefault("rate_per_s", wc.rate_per_s)
        return arrivals.make_arrivals(wc.arrival, rng, params, 0.0, end_s)
    return arrivals.poisson_arrivals(rng, wc.rate_per_s, 0.0, end_s)


def open_loop_generated(ctx: SessionContext, wc: WorkloadClass, seed: np.random.SeedSequence, end_s: float):
    arr_seed, sess_seed = seed.spawn(2)
    picker = _Picker(wc, np.random.default_rng(sess_seed))
    times = _arrival_times(wc, np.random.default_rng(arr_seed), end_s)
    return _start_at_arrivals(ctx, (picker.session(ctx, t) for t in times))


def _trace_path(wc: WorkloadClass) -> str:
    from agentwatt.traces.loaders import BUNDLED_TRACES, bundled_trace_path
    return str(bundled_trace_path(wc.trace)) if wc.trace in BUNDLED_TRACES else wc.trace


def _trace_sessions(ctx: SessionContext, wc: WorkloadClass, end_s: float) -> Iterator[Session]:
    from agentwatt.traces import loaders
    path = _trace_path(wc)
    if hasattr(loaders, "load_trace"):
        src = loaders.load_trace(wc.format, path, limit=wc.limit)
    else:
        label = "azure-code" if "code" in Path(path).name else "azure-conv"
        src = loaders.load_azure_2023(path, limit=wc.limit, agent=label)
    for s in src:
        t = s.arrival_s * wc.time_scale
        if t > end_s:
            return
        sid = ctx.next_session_id
        ctx.next_session_id += 1
        yield relabel(s, sid, t)


def _retimed_sessions(ctx: SessionContext, wc: WorkloadClass, seed: np.random.SeedSequence,
                      end_s: float) -> Iterator[Session]:
    """The trace's sessions in order (cycling if ``repeat``), started at an arrival process's times."""
    from agentwatt.traces import loaders
    path = _trace_path(wc)
    times = _arrival_times(wc, np.random.default_rng(seed), end_s)
    while True:
        src = loaders.load_trace(wc.format, path, limit=wc.limit)
        any_session = False
        for s in src:
            any_session = True
            t = next(times, None)
            if t is None:
                return
            sid = ctx.next_session_id
            ctx.next_session_id += 1
            yield relabel(s, sid, t)
        if not (wc.repeat and any_session):
            return


def open_loop_trace(ctx: SessionContext, wc: WorkloadClass, end_s: float, seed: np.random.SeedSequence | None = None):
    if wc.retime:
        return _start_at_arrivals(ctx, _retimed_sessions(ctx, wc, seed or np.random.SeedSequence(0), end_s))
    return _start_at_arrivals(ctx, _trace_sessions(ctx, wc, end_s))


def replay(ctx: SessionContext, sessions: Iterable[Session], end_s: float):
    """Start the given sessions at their ``arrival_s`` (non-decreasing, checked as they come),
    under run-wide ids in the order given; a session arriving after ``end_s`` ends the replay."""
    from agentwatt.core.errors import InputError
    from agentwatt.traces.schema import validate_session

    def stream() -> Iterator[Session]:
        last = 0.0
        for i, s in enumerate(sessions):
            if not isinstance(s, Session):
                raise InputError(f"sessions[{i}]: {type(s).__name__}: expected a traces.schema.Session")
            validate_session(s, f"sessions[{i}]: session")
            if s.arrival_s < last:
                raise InputError(f"sessions[{i}]: session {s.id} arrival_s = {s.arrival_s!r} before the previous "
                                 f"session's {last!r}: expected sessions in order of arrival")
            last = s.arrival_s
            if s.arrival_s > end_s:
                return
            sid = ctx.next_session_id
            ctx.next_session_id += 1
            yield relabel(s, sid, s.arrival_s)

    return _start_at_arrivals(ctx, stream())


def _start_at_arrivals(ctx: SessionContext, sessions: Iterator[Session]):
    env = ctx.env
    for s in sessions:
        if s.arrival_s > env.now:
            yield env.timeout(s.arrival_s - env.now)
        env.process(run_session(ctx, s))


def closed_loop(ctx: SessionContext, wc: WorkloadClass, seed: np.random.SeedSequence, end_s: float):
    """``concurrency`` users; each runs a session, thinks ``think_time_s``, repeats, until
    ``sessions`` have been started in total or arrivals end."""
    env = ctx.env
    picker = _Picker(wc, np.random.default_rng(seed))
    budget = {"left": wc.sessions if wc.sessions is not None else float("inf")}

    def user():
        while budget["left"] > 0 and env.now < end_s:
            budget["left"] -= 1
            yield env.process(run_session(ctx, picker.session(ctx, env.now)))
            if wc.think_time_s > 0:
                yield env.timeout(wc.think_time_s)

    users = [env.process(user()) for _ in range(wc.concurrency)]
    yield env.all_of(users)
