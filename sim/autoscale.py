"""Autoscaling: start and stop replicas with load, as Kubernetes' Horizontal Pod Autoscaler does.

A replica is in one of four states::

    stopped ──scale up──► warming ──warmup_s──► ready ──scale down──► draining ──no work left──► stopped
       ▲                     │ scale down                ▲                │ scale up
       └─────────────────────┘                           └────────────────┘

* stopped: no model loaded; its GPUs draw the ``[autoscale] stopped_state`` power (parked or off);
  its KV cache (prefix cache and retained sessions) is gone.
* warming: loading the weights and starting the engine (``warmup_seconds``): draws idle power,
  serves nothing, is not routed to.
* ready: routed to.
* draining: not routed to; it finishes the calls it holds, then stops ("drain before stop").

Every ``interval_s`` the autoscaler sums the metric over the ready replicas (``concurrency``:
running + waiting calls, Knative's default metric; ``queue``: waiting calls, vLLM's
``num_requests_waiting``; ``utilization``: the share of the last interval each spent running
engine steps, HPA's CPU-utilisation rule; ``predicted``: the concurrency extrapolated linearly
from the last two readings to one warm-up ahead, so that capacity is ready when the load arrives),
recommends ``ceil(sum / target_per_replica)`` clamped to
``[min_replicas, [fleet] replicas]`` (HPA's ``desired = ceil(current × metric / target)``, with its
10 % tolerance), and stabilises the recommendation as HPA's ``behavior`` does: up to the lowest
recommendation of the last ``scale_up_delay_s``, down to the highest of the last
``scale_down_delay_s`` (kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/).
Scaling up first takes back draining replicas (lowest index first), then starts stopped ones;
scaling down first cancels warm-ups, then drains ready replicas (highest index first).

The pure parts (``recommend``, ``stabilize``, ``warmup_seconds``) are tested without SimPy.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
import pandas as pd
import simpy

from agentwatt.core.errors import InvariantViolation
from agentwatt.sim.batching import unpin

# kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/: --horizontal-pod-autoscaler-tolerance
HPA_TOLERANCE = 0.1
STATES = ("stopped", "warming", "ready", "draining")


def warmup_seconds(weight_bytes: float, storage_gb_per_s: float, engine_start_s: float) -> float:
    """Model-load warm-up: the weights read once from storage, plus the engine's start."""
    return weight_bytes / (storage_gb_per_s * 1e9) + engine_start_s


def recommend(load: float, ready: int, current: int, target: float, lo: int, hi: int) -> int:
    """HPA's replica count for ``load`` summed over ``ready`` replicas: ``current`` while the
    per-replica load is within ``HPA_TOLERANCE`` of ``target``, else ``ceil(load / target)``;
    clamped to ``[lo, hi]``."""
    ratio = load / (ready * target) if ready else math.inf
    if abs(ratio - 1.0) <= HPA_TOLERANCE:
        n = current
    else:
        n = math.ceil(load / target - 1e-9)
    return max(lo, min(hi, n))


def stabilize(history: deque, now: float, rec: int, current: int, up_s: float, down_s: float) -> int:
    """HPA's ``behavior`` stabilisation: append ``(now, rec)`` to ``history`` (dropping entries older
    than both windows); scale up to at most the lowest recommendation within the last ``up_s``, down
    to at least the highest within the last ``down_s``; otherwise stay at ``current``."""
    history.append((now, rec))
    keep = max(up_s, down_s)
    while history and history[0][0] < now - keep:
        history.popleft()
    up = min((r for t, r in history if t >= now - up_s), default=rec)
    down = max((r for t, r in history if t >= now - down_s), default=rec)
    n = current
    if n < up:
        n = up
    if n > down:
        n = down
    return n


def predicted_load(now_load: float, prev_load: float | None, interval_s: float, ahead_s: float) -> float:
    """The load ``ahead_s`` from now on the line through the last two readings (never below 0)."""
    if prev_load is None:
        return now_load
    return max(0.0, now_load + (now_load - prev_load) / interval_s * ahead_s)


def busy_seconds(books, now: float) -> float:
    """Busy seconds of a replica up to ``now``: finished steps, plus the part of the one running."""
    extra = now - books.in_flight[0] if books.in_flight is not None else 0.0
    return books.busy_s + extra


def flush_kv(state) -> None:
    """A stopped engine's KV memory is gone: drop the retained sessions' pins and empty the prefix
    cache (taking every free block evicts its cached hash; giving them back leaves them uncached)."""
    for pid in list(state.pins):
        unpin(state, pid)
    kv = state.kv
    blocks = kv.allocate(kv.num_free)
    if blocks:
        kv.release(blocks)


class Autoscaler:
    """Starts and stops ``replicas`` behind ``router`` per ``cfg`` (``scenario.AutoscaleConfig``).

    ``stopped_w`` is a stopped replica's watts (all its GPUs), ``warmup_s`` a start's warm-up.
    ``frame()`` is the replica count per state over time; ``summary(t_end, tp)`` the summary block.
    """

    def __init__(self, env: simpy.Environment, replicas: list, router, cfg, *, warmup_s: float,
                 stopped_w: float, seed: int) -> None:
        self.env, self.replicas, self.router, self.cfg = env, replicas, router, cfg
        self.warmup_s = warmup_s
        self.stopped_w = stopped_w
        self.seed = seed
        self.max_replicas = len(replicas)
        initial = cfg.initial_replicas if cfg.initial_replicas is not None else cfg.min_replicas
        self.state = ["ready"] * initial + ["stopped"] * (len(replicas) - initial)   # by position in ``replicas``
        self._pos = {r.index: i for i, r in enumerate(replicas)}
        self._gen = [0] * len(replicas)     # a start's generation: a cancelled warm-up is ignored when it ends
        self.history: deque = deque()
        self._prev_load: float | None = None            # the last concurrency reading ("predicted")
        self._busy = [0.0] * len(replicas)              # busy seconds at the last reading ("utilization")
        self.starts = self.stops = self.cancelled_warmups = self.undrained = 0
        self.timeline: list[tuple] = []
        self.transitions: list[tuple] = []   # (time_s, replica, new state), in order
        for r in replicas:
            r.on_empty = self._empty
        for r in replicas[initial:]:
            router.set_ready(r, False)
            r.books.stop(env.now, stopped_w)
        for r, s in zip(replicas, self.state):
            self.transitions.append((env.now, r.index, s))
        self._record()
        env.process(self._loop())

    # ------------------------------------------------------------------ counts
    def count(self, state: str) -> int:
        return self.state.count(state)

    def _record(self) -> None:
        row = (self.env.now, *(self.count(s) for s in STATES))
        if self.timeline and self.timeline[-1][0] == row[0]:
            self.timeline[-1] = row
        else:
            self.timeline.append(row)
        ready, warming = row[3], row[2]
        if ready < self.cfg.min_replicas or ready + warming > self.max_replicas or ready < 1:
            raise InvariantViolation(f"bug (seed {self.seed}): autoscaler at t = {self.env.now:g} s has {ready} "
                                     f"ready and {warming} warming replicas: expected {self.cfg.min_replicas} to "
                                     f"{self.max_replicas}")

    # ------------------------------------------------------------------ the control loop
    def _loop(self):
        env, cfg = self.env, self.cfg
        while True:
            yield env.timeout(cfg.interval_s)
            ready = [r for r, s in zip(self.replicas, self.state) if s == "ready"]
            if cfg.metric == "queue":
                load = sum(len(r.state.waiting) for r in ready)
            elif cfg.metric == "utilization":
                busy = [busy_seconds(r.books, env.now) for r in self.replicas]
                load = sum((b - b0) / cfg.interval_s for b, b0, s in zip(busy, self._busy, self.state) if s == "ready")
                self._busy = busy
            else:
                load = sum(r.outstanding for r in ready)
                if cfg.metric == "predicted":
                    load, self._prev_load = predicted_load(load, self._prev_load, cfg.interval_s, self.warmup_s), load
            current = len(ready) + self.count("warming")
            rec = recommend(load, len(ready), current, cfg.target_per_replica, cfg.min_replicas, self.max_replicas)
            n = stabilize(self.history, env.now, rec, current, cfg.scale_up_delay_s, cfg.scale_down_delay_s)
            if n != current:
                self._scale(n - current)
                self._record()

    def _scale(self, k: int) -> None:
        st, reps = self.state, self.replicas
        if k > 0:
            for i in range(len(reps)):              # take back draining replicas first: the model is loaded
                if k and st[i] == "draining":
                    self._set(i, "ready")
                    self.router.set_ready(reps[i], True)
                    self.undrained += 1
                    k -= 1
            for i in range(len(reps)):
                if k and st[i] == "stopped":
                    self._set(i, "warming")
                    self._gen[i] += 1
                    reps[i].books.start(self.env.now)
                    self.env.process(self._warm(reps[i], self._gen[i]))
                    self.starts += 1
                    k -= 1
        else:
            k = -k
            for i in reversed(range(len(reps))):    # cancel warm-ups first: they serve nothing yet
                if k and st[i] == "warming":
                    self._stop(reps[i])
                    self.cancelled_warmups += 1
                    k -= 1
            for i in reversed(range(len(reps))):
                if k and st[i] == "ready":
                    self._set(i, "draining")
                    self.router.set_ready(reps[i], False)
                    k -= 1
                    if not reps[i].outstanding:
                        self._stop(reps[i])

    def _set(self, i: int, state: str) -> None:
        self.state[i] = state
        self.transitions.append((self.env.now, self.replicas[i].index, state))

    def _warm(self, replica, gen: int):
        yield self.env.timeout(self.warmup_s)
        i = self._pos[replica.index]
        if self._gen[i] == gen and self.state[i] == "warming":
            self._set(i, "ready")
            self.router.set_ready(replica, True)
            self._record()

    def _stop(self, replica) -> None:
        self._set(self._pos[replica.index], "stopped")
        replica.books.stop(self.env.now, self.stopped_w)
        flush_kv(replica.state)
        self.stops += 1

    def _empty(self, replica) -> None:
        """A replica ran out of work: a draining one stops now."""
        if self.state[self._pos[replica.index]] == "draining":
            self._stop(replica)
            self._record()

    # ------------------------------------------------------------------ results
    def frame(self, t_end: float) -> pd.DataFrame:
        """Replicas per state from each change to the next (``time_s`` to ``end_s``)."""
        df = pd.DataFrame(self.timeline, columns=["time_s", *STATES])
        df["end_s"] = [*df["time_s"].iloc[1:], t_end]
        return df[["time_s", "end_s", "ready", "warming", "draining", "stopped"]]

    def summary(self, t_end: float, tp: int, stopped_energy_j: float | None) -> dict:
        df = self.frame(t_end)
        dt = (df["end_s"] - df["time_s"]).to_numpy()
        hours = {s: float(np.sum(df[s].to_numpy() * dt)) / 3600 for s in STATES}
        cfg = self.cfg
        return {
            "metric": cfg.metric, "target_per_replica": cfg.target_per_replica,
            "min_replicas": cfg.min_replicas, "max_replicas": self.max_replicas,
            "interval_s": cfg.interval_s, "scale_up_delay_s": cfg.scale_up_delay_s,
            "scale_down_delay_s": cfg.scale_down_delay_s, "stopped_state": cfg.stopped_state,
            "warmup_s": self.warmup_s,
            "starts": self.starts, "stops": self.stops, "cancelled_warmups": self.cancelled_warmups,
            "drains_taken_back": self.undrained,
            "replica_hours": hours,
            "gpu_hours": {s: h * tp for s, h in hours.items()},
            "warmup_gpu_hours": hours["warming"] * tp,
            "ready_replicas": {"min": int(df["ready"].min()), "max": int(df["ready"].max()),
                               "mean": hours["ready"] * 3600 / t_end if t_end > 0 else None},
            "gpu_stopped_energy_j": stopped_energy_j,
        }

    def scaling_at(self, t: np.ndarray) -> np.ndarray:
        """True where replicas were warming at times ``t`` (the fleet was catching up with load)."""
        times = np.array([row[0] for row in self.timeline])
        warming = np.array([row[2] for row in self.timeline])
        return warming[np.searchsorted(times, t, side="right") - 1] > 0
