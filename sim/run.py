"""Scenario → Results. Start here to follow a request through the simulator.

    scenario (sim/scenario.py) ─► core/profile.load_profile
      ─► fleet.build: replicas behind a router.Router, metrics.Recorder, session.SessionContext, and one
         arrival process per [[workload]] class (sim/workload.py; seeded from run.seed), or
         workload.replay of the sessions given to run(..., sessions=...)
      ─► session.run_session per session: each LLM call → router.route → replica.submit
      ─► replica step loop (sim/replica.py): batching.schedule → core/step.py step_cost (step time and
         watts, a power cap's stretch) → env.timeout → batching.complete; energy booked in sim/books.py
      ─► Recorder rows and per-replica counters ─► report.summarize ─► Results
      ─► Results.write / output.write_results (summary.json, Parquet, PNG)
"""
from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import simpy

from agentwatt.core.profile import Profile, load_profile
from agentwatt.core.step import state_power_w
from agentwatt.core.errors import InvariantViolation
from agentwatt.sim.fleet import build
from agentwatt.sim.scenario import Scenario
from agentwatt.sim.session import SessionContext
from agentwatt.traces.schema import Session


@dataclass(repr=False)
class Results:
    """One run: ``summary`` (what ``summary.json`` holds), tables of calls, sessions and fleet power
    (``None`` without a power model), facility power levels, and with ``[run] step_trace = true`` the
    engine steps (``steps``, written as ``steps.csv``); ``write(folder)`` saves them all."""

    scenario: Scenario
    profile: Profile
    summary: dict[str, Any]
    calls: pd.DataFrame
    sessions: pd.DataFrame
    power: pd.DataFrame | None
    power_levels: pd.DataFrame | None = None
    steps: pd.DataFrame | None = None   # [run] step_trace: one row per engine step (core/steptrace.py columns + replica)
    scaling: pd.DataFrame | None = None  # [autoscale]: replicas ready/warming/draining/stopped over time
    replica_states: pd.DataFrame | None = None   # [autoscale]: each replica's state changes (time_s, replica, state)
    transfers: pd.DataFrame | None = None   # [disaggregation]: one row per KV transfer (sim/disagg.py TRANSFER_COLUMNS)

    def __repr__(self) -> str:
        s = self.summary
        p99 = (s.get("session_e2e_s") or {}).get("p99")
        e = s.get("gpu_energy_per_session_j")
        return (f"<Results {self.scenario.name!r}: {s.get('sessions_completed')}/{s.get('sessions_arrived')} sessions "
                f"completed, session p99 {'n/a' if p99 is None else f'{p99:.3g} s'}, "
                f"{'energy n/a' if e is None else f'{e / 3600:.3g} Wh/session'}, {s.get('gpus')} GPU(s)>")

    @property
    def metrics(self) -> pd.Series:
        """Every scalar of the summary under a dotted name (``session_e2e_s.p99``,
        ``by_agent.react-hotpotqa.gpu_energy_per_session_j``), as the columns of a sweep table."""
        return pd.Series(_flat(self.summary), dtype=object)

    def write(self, folder: str | Path, plots: bool = True) -> dict[str, Path]:
        """Write summary.json, the Parquet tables and (``plots``) the PNGs into ``folder``
        (``sim/output.py``); returns the paths written."""
        from agentwatt.sim.output import write_results
        return write_results(self, folder, plots=plots)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[f"{prefix}{k}"] = v
    return out


def _controller(ctx: SessionContext, arrival_procs: list, arrivals_end_s: float, deadline_s: float):
    """Run at least until arrivals end, then until no session is active or the deadline."""
    env = ctx.env
    yield env.all_of(arrival_procs) | env.timeout(deadline_s)
    if env.now < arrivals_end_s:
        yield env.timeout(arrivals_end_s - env.now)
    while ctx.active_sessions > 0 and env.now < deadline_s:
        ctx.idle_event = env.event()
        yield ctx.idle_event | env.timeout(deadline_s - env.now)


def _progress(env: simpy.Environment, deadline_s: float, step_s: float):
    from tqdm import tqdm
    with tqdm(total=round(deadline_s), unit="sim s", desc="simulating", leave=False) as bar:
        while True:
            yield env.timeout(step_s)
            bar.update(min(step_s, deadline_s - bar.n))


def run(scenario: Scenario, profile: Profile | None = None, *, sessions: Iterable[Session] | None = None,
        progress: bool = False) -> Results:
    """Simulate ``scenario``; deterministic for a given scenario (its seed included).

    ``profile`` defaults to the scenario's. ``sessions`` (``traces.schema.Session`` objects in order
    of ``arrival_s``) replaces the scenario's ``[[workload]]`` classes: they are replayed at their
    arrival times, and the run ends when they have finished (or at the drain deadline).
    """
    wall0 = time.perf_counter()
    profile = profile if profile is not None else load_profile(scenario.profile)
    from agentwatt.sim.facility import with_server
    scenario = replace(scenario, facility=with_server(scenario.facility, profile))   # the GPU's server if unset
    world = build(scenario, profile, sessions=sessions)
    env, replicas, ctx, rec = world.env, world.replicas, world.ctx, world.recorder
    end_s = scenario.run.duration_s
    deadline = scenario.run.duration_s + scenario.run.drain_timeout_s
    if progress:
        env.process(_progress(env, deadline, max(1.0, deadline / 200)))
    # the event loop allocates many short-lived objects among millions of long-lived ones (KV
    # tables, sessions in flight): collect the young generation 70x less often (the default
    # 700-object threshold scans it ~1,000 times per 10k sessions), restore the setting after
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        env.run(until=env.process(_controller(ctx, world.arrivals, end_s if world.open_loop else 0.0, deadline)))
    finally:
        gc.set_threshold(*thresholds)
    t_end = env.now
    for r in replicas:
        r.finish(t_end)
    _check_invariants(scenario, ctx, replicas)
    for r in replicas:
        r.state.kv.drop_tables()

    from agentwatt.sim.facility import fleet_power
    from agentwatt.sim.report import summarize
    calls = rec.calls_frame()
    sessions = rec.sessions_frame()
    _check_times(scenario, calls, sessions, t_end)
    fp = None
    if profile.power.available and world.disagg is not None:
        fp = world.disagg.fleet_power(scenario.facility, t_end)
        _check_facility_energy(scenario, replicas, fp)
    elif profile.power.available:
        spare = scenario.fleet.spare_replicas
        fp = fleet_power([r.bins for r in replicas], profile.hardware.tp, profile.power.idle_w,
                         scenario.facility, t_end, spare_replicas=spare, spare_state=scenario.fleet.spare_state,
                         spare_w_per_gpu=state_power_w(profile, scenario.fleet.spare_state) if spare else 0.0)
        _check_facility_energy(scenario, replicas, fp)
    rows = pd.DataFrame([r.counters() for r in replicas])
    summary = summarize(scenario, profile, calls, sessions, rows, ctx.counts(), fp, t_end)
    summary.update(_tier_and_router_blocks(scenario, world, calls, t_end))
    from agentwatt.sim.report import with_call_columns
    with_call_columns(calls)   # queue_s, ttft_s, tpot_s, e2e_s beside the recorded times (calls.parquet)
    power = levels = None
    if fp is not None:
        from agentwatt.sim.facility import gpu_power_bounds, levels_frame, observed_gpu_power
        power = fp.frame(observed_gpu_power(fp.gpu_w, scenario.run.power_resolution_s, scenario.facility,
                                            scenario.run.seed, gpu_power_bounds(profile, fp.gpus)))
        levels = levels_frame(fp, scenario.facility)
    transfers = None
    if world.disagg is not None:
        summary["disaggregation"] = world.disagg.summary(rows)
        transfers = world.disagg.transfers()
    scaling = states = None
    if world.autoscalers:
        scaling, states = _autoscale_summary(summary, world.autoscalers, profile, calls, t_end)
    summary["wall_time_s"] = round(time.perf_counter() - wall0, 3)
    return Results(scenario=scenario, profile=profile, summary=summary, calls=calls, sessions=sessions, power=power,
                   power_levels=levels, steps=steps_frame(replicas) if scenario.run.step_trace else None,
                   scaling=scaling, replica_states=states, transfers=transfers)


def _autoscale_summary(summary: dict, scalers: dict, profile: Profile, calls: pd.DataFrame,
                       t_end: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add the ``autoscale`` block to ``summary`` (one per pool with ``[disaggregation]``) and stopped
    GPU-seconds to its power states; return the replicas-per-state table and the replicas' state
    changes. Calls submitted while a pool's replicas were warming are that pool's ramp."""
    tp = profile.hardware.tp
    fin = calls[calls["status"] == "finished"]
    ttft = (fin["first_token_s"] - fin["submit_s"]).to_numpy()
    blocks, frames = {}, []
    for pool, scaler in scalers.items():
        reps = scaler.replicas
        e_stopped = sum(r.books.stopped_energy_j for r in reps) if profile.power.available else None
        block = scaler.summary(t_end, tp, e_stopped)
        ramp = scaler.scaling_at(fin["submit_s"].to_numpy()) if len(fin) else np.zeros(0, dtype=bool)
        block["calls_during_warmup"] = int(ramp.sum())
        block["ttft_p99_during_warmup_s"] = float(np.percentile(ttft[ramp], 99)) if ramp.any() else None
        block["ttft_p99_otherwise_s"] = float(np.percentile(ttft[~ramp], 99)) if (~ramp).any() else None
        blocks[pool] = block
        states = summary.get("gpu_state_seconds")
        if states is not None:
            states[scaler.cfg.stopped_state] += sum(r.books.stopped_s for r in reps) * tp
        frames.append(scaler.frame(t_end).assign(pool=pool))
    transitions = pd.DataFrame([row for s in scalers.values() for row in s.transitions],
                               columns=["time_s", "replica", "state"])
    if list(scalers) == ["fleet"]:
        summary["autoscale"] = blocks["fleet"]
        return frames[0].drop(columns="pool"), transitions
    summary["autoscale"] = blocks
    return (pd.concat(frames, ignore_index=True),
            transitions.sort_values("time_s", kind="stable", ignore_index=True))


def _tier_and_router_blocks(scenario: Scenario, world, calls: pd.DataFrame, t_end: float) -> dict[str, Any]:
    """Summary blocks of the opt-in features (none by default): ``kv_tiers`` (host KV tier,
    sim/kvtier.py) and ``router`` (prefix-aware routing, with the calls each replica served)."""
    out: dict[str, Any] = {}
    eng = scenario.engine
    if world.ctx.kv_tiers is not None:
        from agentwatt.sim.kvtier import SERVER_LINKS, tiers_summary
        link = eng.kv_host_link or SERVER_LINKS[scenario.facility.server]
        out["kv_tiers"] = tiers_summary([t.row(t_end) for t in world.ctx.kv_tiers], eng.kv_retention, link,
                                        eng.kv_prefetch, t_end, world.ctx.calls_finished)
    if world.router.prefix is not None:
        per = calls.groupby("replica").size().reindex(range(len(world.replicas)), fill_value=0)
        out["router"] = {**world.router.prefix_summary(),
                         "calls_per_replica_max_over_mean": float(per.max() / per.mean()) if per.mean() else None}
    return out


def steps_frame(replicas) -> pd.DataFrame:
    """The replicas' step rows (``core/steptrace.py`` columns, then ``replica``) in time order."""
    from agentwatt.core.steptrace import COLUMNS
    frames = [pd.DataFrame(r.trace or [], columns=list(COLUMNS)).assign(replica=r.index) for r in replicas]
    df = pd.concat(frames, ignore_index=True)
    for c in ("prefill_tokens", "prefill_attn", "decode_seqs", "decode_ctx", "replica"):
        df[c] = df[c].astype("int64")
    df["energy_j"] = df["energy_j"].astype("float64")
    return df.sort_values(["start_s", "replica"], kind="stable", ignore_index=True)


def _check_times(scenario: Scenario, calls: pd.DataFrame, sessions: pd.DataFrame, t_end: float) -> None:
    """Simulated time runs forward: submit ≤ first token ≤ finish ≤ end, arrival ≤ finish."""
    seed = scenario.run.seed
    fin = calls["status"] == "finished"
    sub, first, done = calls["submit_s"], calls["first_token_s"], calls["finish_s"]
    bad = fin & ((first < sub) | (done < first) | (done > t_end + 1e-9))
    if bool(bad.any()):
        row = calls[bad].iloc[0]
        raise InvariantViolation(f"bug (seed {seed}): call {row['session_id']}/{row['node_id']} times out of order")
    sf = sessions[sessions["status"] == "finished"]
    if bool((sf["finish_s"] < sf["arrival_s"]).any()):
        raise InvariantViolation(f"bug (seed {seed}): a session finished before it arrived")


def _check_facility_energy(scenario: Scenario, replicas, fp) -> None:
    seed = scenario.run.seed
    gpu_j = float(np.sum(fp.gpu_w * fp.width_s))
    counted = sum(r.books.busy_energy_j + r.books.idle_energy_j + r.books.stopped_energy_j for r in replicas) \
        + fp.spare_gpu_w * float(np.sum(fp.width_s))
    if not math.isclose(gpu_j, counted, rel_tol=1e-9, abs_tol=1e-6):
        raise InvariantViolation(f"bug (seed {seed}): power series integrates to {gpu_j} J, replicas counted {counted} J")


def _check_invariants(scenario: Scenario, ctx: SessionContext, replicas) -> None:
    """Cheap end-of-run checks; a failure is a simulator bug, reported with the seed."""
    seed = scenario.run.seed
    in_flight = sum(r.outstanding for r in replicas) + (ctx.disagg.in_transfer if ctx.disagg is not None else 0)
    if ctx.calls_submitted != ctx.calls_finished + ctx.calls_dropped + in_flight:
        raise InvariantViolation(
            f"bug (seed {seed}): calls submitted {ctx.calls_submitted} != finished {ctx.calls_finished} "
            f"+ dropped {ctx.calls_dropped} + in flight {in_flight}")
    if ctx.sessions_arrived != ctx.sessions_finished + ctx.sessions_dropped + ctx.active_sessions:
        raise InvariantViolation(f"bug (seed {seed}): sessions do not add up")
    for r in replicas:
        b = r.books
        e = b.bins.total("energy_j")
        counted = b.busy_energy_j + b.idle_energy_j + b.stopped_energy_j
        if b.idle_w is not None and not math.isclose(e, counted, rel_tol=1e-9, abs_tol=1e-6):
            raise InvariantViolation(f"bug (seed {seed}): replica {r.index} energy bins {e} J != counted {counted} J")
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
    for t in ctx.kv_tiers or ():
        try:
            t.host.check()
        except AssertionError as e:
            raise InvariantViolation(f"bug (seed {seed}): replica {t.index} {e}") from None
