"""One vLLM-like replica as a SimPy process: one event per engine step.

The loop: sleep while there is no work; else ``batching.schedule`` → step time and watts from the
profile (stretched by a power cap if one binds) → ``env.timeout(step)`` → ``batching.complete``.
Energy is integrated as time advances into per-bin channels (joules; busy, idle-waiting-for-tools
and idle-empty seconds). A busy step's joules are shared among its requests by the tokens each
processed. Idle time while sessions homed here wait on tools is "idle-tool": its joules are shared
equally among those sessions (they hold the replica idle); other idle time is "idle-empty".
"""
from __future__ import annotations

import simpy

from agentwatt.core.profile import Profile
from agentwatt.sim import power
from agentwatt.sim.batching import (DecodeBlock, ReplicaState, Request, advance_decode, complete,
                                    decode_run_length, schedule)
from agentwatt.sim.kv import BlockManager, CountingBlockManager
from agentwatt.sim.metrics import REPLICA_CHANNELS, TimeBins


class Replica:
    def __init__(self, env: simpy.Environment, index: int, profile: Profile, *, num_blocks: int,
                 block_size: int, max_num_seqs: int, max_num_batched_tokens: int,
                 prefix_caching: bool, resolution_s: float, cap_w_per_gpu: float | None = None,
                 step_skipping: bool = True) -> None:
        self.env = env
        self.index = index
        self.profile = profile
        kv = BlockManager(num_blocks, block_size) if prefix_caching else CountingBlockManager(num_blocks, block_size)
        self.state = ReplicaState(kv=kv,
                                  max_num_seqs=max_num_seqs,
                                  max_num_batched_tokens=max_num_batched_tokens)
        self.bins = TimeBins(resolution_s, REPLICA_CHANNELS)
        self.cap_w_per_gpu = cap_w_per_gpu
        self.step_skipping = step_skipping
        self.events = 0
        self.idle_w = power.idle_power_w(profile)
        self.busy_s = 0.0
        self.steps = 0
        self.busy_energy_j = 0.0
        self.idle_energy_j = 0.0
        self.idle_tool_energy_j = 0.0
        self.prefill_tokens = 0
        self.decode_tokens = 0
        self.preemptions = 0
        self.peak_kv_blocks = 0
        self.kv_block_seconds = 0.0
        self.tool_waiters: dict[int, list] = {}   # id(session state) -> [session state, tools waiting]
        self._wake: simpy.Event | None = None
        self._idle_since: float | None = 0.0
        self.on_load = None   # callback(index, outstanding) on each change (set by a load-aware router)
        self._inflight = None  # (start, cost) of the step or decode block in progress
        env.process(self._loop())

    @property
    def outstanding(self) -> int:
        return self.state.outstanding

    def submit(self, req: Request) -> None:
        self.state.waiting.append(req)
        self._load_changed()
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    # ------------------------------------------------------------ idle accounting
    def _close_idle(self, now: float) -> None:
        """Charge the idle interval since ``_idle_since`` to tool-wait or empty, per current waiters."""
        t0 = self._idle_since
        if t0 is None or now <= t0:
            return
        waiters = self.tool_waiters
        self.bins.add("idle_tool_s" if waiters else "idle_empty_s", t0, now, 1.0)
        if self.idle_w is not None:
            e = self.idle_w * (now - t0)
            self.idle_energy_j += e
            self.bins.add("energy_j", t0, now, self.idle_w)
            if waiters:
                self.idle_tool_energy_j += e
                share = e / len(waiters)
                for st, _ in waiters.values():
                    st["idle_energy"] += share
        self._idle_since = now

    def tool_wait_begins(self, session_state: dict) -> None:
        self._close_idle(self.env.now)
        entry = self.tool_waiters.setdefault(id(session_state), [session_state, 0])
        entry[1] += 1

    def tool_wait_ends(self, session_state: dict) -> None:
        self._close_idle(self.env.now)
        entry = self.tool_waiters[id(session_state)]
        entry[1] -= 1
        if entry[1] == 0:
            del self.tool_waiters[id(session_state)]

    def finish(self, t_end: float) -> None:
        """Close the books at the end of the run: the part of a step still running at the deadline
        (busy time and energy up to ``t_end``; its tokens are not counted, the step did not end; of
        a decode block, the steps that did end are), then the idle tail."""
        if self._inflight is not None:
            t0, cost, blk, b = self._inflight
            self._inflight = None
            if blk is not None:   # a decode block: its steps that ended by t_end did happen
                k = blk.steps_started_by(t_end - t0)
                done = k if blk.end(k) <= t_end - t0 else k - 1
                self.steps += done
                self.decode_tokens += b * done
            if t_end > t0:
                self._book_busy(t0, t_end - t0, cost)
        self._close_idle(t_end)

    def _book_busy(self, t0: float, dt: float, cost) -> float | None:
        """Charge ``dt`` busy seconds from ``t0`` at the step's cost: busy and capped time, and its
        joules (returned; None when the profile has no power model)."""
        self.busy_s += dt
        bins = self.bins
        bins.add("busy_s", t0, t0 + dt, 1.0)
        if cost.clock_fraction < 1.0:
            bins.add("capped_s", t0, t0 + dt, 1.0)
        if cost.watts is None:
            return None
        e = cost.watts * dt
        self.busy_energy_j += e
        bins.add("energy_j", t0, t0 + dt, cost.watts)
        return e

    def _load_changed(self) -> None:
        if self.on_load is not None:
            self.on_load(self.index, self.state.outstanding)

    # ------------------------------------------------------------ the step loop
    def _decode_block(self, plan, k: int, cost):
        """k decode steps of an unchanged batch in one event; a new arrival cuts the block short
        at the end of the step in progress (the engine would admit it at that step boundary)."""
        env, st, lat = self.env, self.state, self.profile.latency
        b = plan.decode_seqs
        blk = DecodeBlock(lat.overhead_s + lat.decode_seq_s * b + lat.decode_ctx_s * plan.decode_ctx,
                          lat.decode_ctx_s * b)
        t0 = env.now
        used0 = st.kv.num_used
        total = blk.end(k)
        wake = self._wake = env.event()   # a new arrival or the block's end, whichever first
        env.timeout(total).callbacks.append(lambda _t: wake.triggered or wake.succeed())
        self._inflight = (t0, cost, blk, b)
        yield wake
        self._wake = None
        elapsed = env.now - t0
        if elapsed < total:
            k = min(k, blk.steps_started_by(elapsed))   # the step in progress completes
            end_k = blk.end(k)
            if end_k > elapsed:
                yield env.timeout(end_k - elapsed)
        self._inflight = None
        dt = blk.end(k)
        self.steps += k
        self.decode_tokens += b * k
        e = self._book_busy(t0, dt, cost)
        if e is not None:
            share = e / b
            for r, _ in plan.items:
                r.energy_j += share
        finished = advance_decode(st, plan, k, env.now)
        used1 = st.kv.num_used + sum(len(r.blocks) for r in finished)  # before finished ones freed
        self.peak_kv_blocks = max(self.peak_kv_blocks, used1)
        self.kv_block_seconds += 0.5 * (used0 + used1) * dt
        if finished:
            self._load_changed()
        for r in finished:
            r.done.succeed(r)

    def _loop(self):
        env, st, prof = self.env, self.state, self.profile
        while True:
            if not st.outstanding:
                self._idle_since = env.now
                self._wake = env.event()
                yield self._wake
                self._wake = None
                self._close_idle(env.now)
                self._idle_since = None
            plan = schedule(st)
            if plan.dropped:
                self._load_changed()
            for r in plan.dropped:
                r.done.succeed(r)
            self.preemptions += plan.preempted
            if not plan.items:
                continue
            cost = power.step_cost(prof, plan, self.cap_w_per_gpu)
            self.events += 1
            if self.step_skipping:
                k = decode_run_length(st, plan)
                if k > 1:
                    yield from self._decode_block(plan, k, cost)
                    continue
            dt = cost.seconds
            t0 = env.now
            used = st.kv.num_used
            self.peak_kv_blocks = max(self.peak_kv_blocks, used)
            self.kv_block_seconds += used * dt
            self._inflight = (t0, cost, None, 0)
            yield env.timeout(dt)
            self._inflight = None
            self.steps += 1
            self.prefill_tokens += plan.prefill_tokens
            self.decode_tokens += plan.decode_seqs
            e = self._book_busy(t0, dt, cost)
            if e is not None:
                per_token = e / plan.tokens
                for r, n in plan.items:
                    r.energy_j += per_token * n
            finished = complete(st, plan, env.now)
            if finished:
                self._load_changed()
            for r in finished:
                r.done.succeed(r)
