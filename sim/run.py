"""Scenario → Results. Start here to follow a request through the simulator.

    scenario (TOML) ─► load_profile ─► fleet.build_fleet (replicas, router)
      ─► per workload class: an arrival process spawning session.run_session per session
      ─► session: each LLM call → router.route → replica.submit ─► replica step loop:
         batching.schedule → latency.step_s / power.step_power_w → env.timeout → batching.complete
      ─► metrics.Recorder rows ─► report.summarize ─► write_results (JSON, Parquet, PNG)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import simpy

from agentwatt.calibrate.profile import Profile, load_profile
from agentwatt.errors import InvariantViolation
from agentwatt.sim.fleet import build_fleet
from agentwatt.sim.metrics import Recorder
from agentwatt.sim.scenario import Scenario, WorkloadClass
from agentwatt.sim.session import SessionContext, run_session
from agentwatt.traces.schema import LLMCall, Segment, Session


@dataclass
class Results:
    scenario: Scenario
    profile: Profile
    summary: dict[str, Any]
    calls: pd.DataFrame
    sessions: pd.DataFrame
    power: pd.DataFrame | None


def _generated_sessions(ctx: SessionContext, wc: WorkloadClass, seed: np.random.SeedSequence,
                        end_s: float) -> Iterator[Session]:
    from agentwatt.traces.agents import make_agent
    from agentwatt.traces.arrivals import poisson_arrivals
    arr_seed, sess_seed = seed.spawn(2)
    agent = make_agent(wc.agent, **wc.knobs)
    rng = np.random.default_rng(sess_seed)
    for t in poisson_arrivals(np.random.default_rng(arr_seed), wc.rate_per_s, 0.0, end_s):
        sid = ctx.next_session_id
        ctx.next_session_id += 1
        yield agent.session(rng, sid, t)


def _relabel(s: Session, new_id: int, arrival_s: float) -> Session:
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


def _trace_sessions(ctx: SessionContext, wc: WorkloadClass, end_s: float) -> Iterator[Session]:
    from agentwatt.traces.loaders import BUNDLED_TRACES, bundled_trace_path, load_azure_2023
    path = bundled_trace_path(wc.trace) if wc.trace in BUNDLED_TRACES else wc.trace
    label = "azure-code" if "code" in Path(path).name else "azure-conv"
    for s in load_azure_2023(path, limit=wc.limit, agent=label):
        t = s.arrival_s * wc.time_scale
        if t > end_s:
            return
        sid = ctx.next_session_id
        ctx.next_session_id += 1
        yield _relabel(s, sid, t)


def _arrivals(ctx: SessionContext, sessions: Iterator[Session]):
    env = ctx.env
    for s in sessions:
        if s.arrival_s > env.now:
            yield env.timeout(s.arrival_s - env.now)
        env.process(run_session(ctx, s))


def _controller(ctx: SessionContext, arrival_procs: list, deadline_s: float):
    env = ctx.env
    yield env.all_of(arrival_procs) | env.timeout(deadline_s)
    while ctx.active_sessions > 0 and env.now < deadline_s:
        ctx.idle_event = env.event()
        yield ctx.idle_event | env.timeout(deadline_s - env.now)


def _progress(env: simpy.Environment, deadline_s: float, step_s: float):
    from tqdm import tqdm
    with tqdm(total=round(deadline_s), unit="sim s", desc="simulating", leave=False) as bar:
        while True:
            yield env.timeout(step_s)
            bar.update(min(step_s, deadline_s - bar.n))


def run(scenario: Scenario, profile: Profile | None = None, progress: bool = False) -> Results:
    """Simulate ``scenario``; deterministic for a given scenario (its seed included)."""
    wall0 = time.perf_counter()
    profile = profile if profile is not None else load_profile(scenario.profile)
    env = simpy.Environment()
    replicas, router, binner, num_blocks = build_fleet(env, scenario, profile)
    rec = Recorder()
    ctx = SessionContext(env, router, rec, scenario.engine.block_size_tokens, scenario.engine.prefix_caching,
                         energy_available=profile.power.available)
    seeds = np.random.SeedSequence(scenario.run.seed).spawn(len(scenario.workload))
    procs = []
    for wc, seed in zip(scenario.workload, seeds):
        src = (_generated_sessions(ctx, wc, seed, scenario.run.duration_s) if wc.agent
               else _trace_sessions(ctx, wc, scenario.run.duration_s))
        procs.append(env.process(_arrivals(ctx, src)))
    deadline = scenario.run.duration_s + scenario.run.drain_timeout_s
    if progress:
        env.process(_progress(env, deadline, max(1.0, deadline / 200)))
    env.run(until=env.process(_controller(ctx, procs, deadline)))
    t_end = env.now
    for r in replicas:
        r.finish(t_end)
    _check_invariants(scenario, ctx, replicas, binner)

    from agentwatt.sim.report import summarize
    calls = pd.DataFrame(rec.calls)
    sessions = pd.DataFrame(rec.sessions)
    power = None
    if binner is not None:
        t, w = binner.series(t_end)
        power = pd.DataFrame({"time_s": t, "gpu_power_w": w})
    summary = summarize(scenario, profile, ctx, replicas, calls, sessions, power, t_end, num_blocks)
    summary["wall_time_s"] = round(time.perf_counter() - wall0, 3)
    return Results(scenario=scenario, profile=profile, summary=summary, calls=calls, sessions=sessions, power=power)


def _check_invariants(scenario: Scenario, ctx: SessionContext, replicas, binner) -> None:
    """Cheap end-of-run checks; a failure is a simulator bug, reported with the seed."""
    seed = scenario.run.seed
    in_flight = sum(r.outstanding for r in replicas)
    if ctx.calls_submitted != ctx.calls_finished + ctx.calls_dropped + in_flight:
        raise InvariantViolation(
            f"bug (seed {seed}): calls submitted {ctx.calls_submitted} != finished {ctx.calls_finished} "
            f"+ dropped {ctx.calls_dropped} + in flight {in_flight}")
    if ctx.sessions_arrived != ctx.sessions_finished + ctx.sessions_dropped + ctx.active_sessions:
        raise InvariantViolation(f"bug (seed {seed}): sessions do not add up")
    if binner is not None:
        total = sum(r.busy_energy_j + r.idle_energy_j for r in replicas)
        if not math.isclose(binner.total_j, total, rel_tol=1e-9, abs_tol=1e-6):
            raise InvariantViolation(f"bug (seed {seed}): power series integrates to {binner.total_j} J, "
                                     f"replicas counted {total} J")
    for r in replicas:
        try:
            r.state.kv.check()
        except AssertionError as e:
            raise InvariantViolation(f"bug (seed {seed}): replica {r.index} KV: {e}") from None
        held = sum(len(q.blocks) for q in r.state.running)
        if held > r.state.kv.num_blocks:
            raise InvariantViolation(f"bug (seed {seed}): replica {r.index} holds more blocks than exist")
