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
from typing import Any

import numpy as np
import pandas as pd
import simpy

from agentwatt.calibrate.profile import Profile, load_profile
from agentwatt.errors import InvariantViolation
from agentwatt.sim import workload
from agentwatt.sim.fleet import build_fleet
from agentwatt.sim.metrics import Recorder
from agentwatt.sim.scenario import Scenario
from agentwatt.sim.session import SessionContext, run_session


@dataclass
class Results:
    scenario: Scenario
    profile: Profile
    summary: dict[str, Any]
    calls: pd.DataFrame
    sessions: pd.DataFrame
    power: pd.DataFrame | None


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
                         energy_available=profile.power.available, kv_retention=scenario.engine.kv_retention,
                         kv_retention_ttl_s=scenario.engine.kv_retention_ttl_s)
    seeds = np.random.SeedSequence(scenario.run.seed).spawn(len(scenario.workload))
    procs = []
    end_s = scenario.run.duration_s
    for wc, seed in zip(scenario.workload, seeds):
        if wc.trace is not None:
            gen = workload.open_loop_trace(ctx, wc, end_s)
        elif wc.arrival == "closed":
            gen = workload.closed_loop(ctx, wc, seed, end_s)
        else:
            gen = workload.open_loop_generated(ctx, wc, seed, end_s)
        procs.append(env.process(gen))
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
        held = sum(len(q.blocks) for q in r.state.running) + sum(len(b) for b in r.state.pins.values())
        refs = sum(r.state.kv.ref)
        if held != refs:
            raise InvariantViolation(f"bug (seed {seed}): replica {r.index}: {refs} block references but "
                                     f"running requests and pins hold {held}")
        if ctx.active_sessions == 0 and r.state.pins:
            raise InvariantViolation(f"bug (seed {seed}): replica {r.index}: KV pins left after all sessions ended")
