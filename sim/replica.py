"""One vLLM-like replica as a SimPy process: one event per engine step.

The loop: sleep while there is no work; else ``batching.schedule`` → step time and watts from the
profile → ``env.timeout(step)`` → ``batching.complete``. Energy is integrated as time advances:
each step's joules go to the energy series and are shared among the step's requests by the
tokens each processed; idle time is charged at idle power to the replica (not to a request).
"""
from __future__ import annotations

import simpy

from agentwatt.calibrate.profile import Profile
from agentwatt.sim import latency, power
from agentwatt.sim.batching import ReplicaState, Request, complete, schedule
from agentwatt.sim.kv import BlockManager
from agentwatt.sim.metrics import EnergyBinner


class Replica:
    def __init__(self, env: simpy.Environment, index: int, profile: Profile, *, num_blocks: int,
                 block_size: int, max_num_seqs: int, max_num_batched_tokens: int,
                 prefix_caching: bool, binner: EnergyBinner | None) -> None:
        self.env = env
        self.index = index
        self.profile = profile
        self.state = ReplicaState(kv=BlockManager(num_blocks, block_size, prefix_caching),
                                  max_num_seqs=max_num_seqs,
                                  max_num_batched_tokens=max_num_batched_tokens)
        self.binner = binner
        self.idle_w = power.idle_power_w(profile)
        self.busy_s = 0.0
        self.steps = 0
        self.busy_energy_j = 0.0
        self.idle_energy_j = 0.0
        self.prefill_tokens = 0
        self.decode_tokens = 0
        self.preemptions = 0
        self.peak_kv_blocks = 0
        self.kv_block_seconds = 0.0
        self._wake: simpy.Event | None = None
        self._idle_since: float | None = 0.0
        env.process(self._loop())

    @property
    def outstanding(self) -> int:
        return self.state.outstanding

    def submit(self, req: Request) -> None:
        self.state.waiting.append(req)
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _charge_idle(self, t0: float, t1: float) -> None:
        if self.idle_w is not None and t1 > t0:
            self.idle_energy_j += self.idle_w * (t1 - t0)
            if self.binner is not None:
                self.binner.add(t0, t1, self.idle_w)

    def finish(self, t_end: float) -> None:
        """Close the books at the end of the run (idle tail)."""
        if self._idle_since is not None:
            self._charge_idle(self._idle_since, t_end)
            self._idle_since = t_end

    def _loop(self):
        env, st, prof = self.env, self.state, self.profile
        while True:
            if not st.outstanding:
                self._idle_since = env.now
                self._wake = env.event()
                yield self._wake
                self._wake = None
                self._charge_idle(self._idle_since, env.now)
                self._idle_since = None
            plan = schedule(st)
            for r in plan.dropped:
                r.done.succeed(r)
            self.preemptions += plan.preempted
            if not plan.items:
                continue
            dt = latency.step_s(prof.latency, plan)
            watts = power.step_power_w(prof, plan)
            t0 = env.now
            used = st.kv.num_used
            self.peak_kv_blocks = max(self.peak_kv_blocks, used)
            self.kv_block_seconds += used * dt
            yield env.timeout(dt)
            self.busy_s += dt
            self.steps += 1
            self.prefill_tokens += plan.prefill_tokens
            self.decode_tokens += plan.decode_seqs
            if watts is not None:
                e = watts * dt
                self.busy_energy_j += e
                if self.binner is not None:
                    self.binner.add(t0, t0 + dt, watts)
                per_token = e / plan.tokens
                for r, n in plan.items:
                    r.energy_j += per_token * n
            for r in complete(st, plan, env.now):
                r.done.succeed(r)
