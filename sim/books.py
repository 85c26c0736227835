"""A replica's books: what it did and what it drew, integrated as the simulation advances.

``ReplicaBooks`` is told by the replica's step loop when a step (or a block of decode steps)
begins and ends and when the replica goes idle or wakes, and by sessions when they start and stop
waiting on a tool. It keeps

* busy, capped, idle-tool and idle-empty seconds and the joules drawn, per time bin
  (``metrics.TimeBins``, channels ``metrics.REPLICA_CHANNELS``) and in total;
* each request's share of a step's joules, by the tokens it processed in the step
  (``Request.energy_j``);
* the idle joules while sessions homed here wait on tools ("idle-tool"), shared equally among
  those sessions (their ``"idle_energy"``); other idle time is "idle-empty";
* steps, tokens, preemptions, step events, and KV use (peak blocks, block-seconds).

``row()`` is the replica's counter row for the summary (``report.summarize`` reads rows, never
a replica). No SimPy here: every method takes the current time, so the books are tested directly.
"""
from __future__ import annotations

from typing import Any

from agentwatt.sim.metrics import REPLICA_CHANNELS, TimeBins


class ReplicaBooks:
    """The counters and per-bin channels of one replica (see the module docstring)."""

    def __init__(self, index: int, idle_w: float | None, resolution_s: float) -> None:
        self.index = index
        self.idle_w = idle_w                  # replica watts with no step running; None: no power model
        self.bins = TimeBins(resolution_s, REPLICA_CHANNELS)
        self.events = 0                       # step events (a decode block is one)
        self.steps = 0
        self.prefill_tokens = 0
        self.decode_tokens = 0
        self.preemptions = 0
        self.busy_s = 0.0
        self.busy_energy_j = 0.0
        self.idle_energy_j = 0.0
        self.idle_tool_energy_j = 0.0
        self.peak_kv_blocks = 0
        self.kv_block_seconds = 0.0
        self.tool_waiters: dict[int, list] = {}   # id(session state) -> [session state, tools waiting]
        self.idle_since: float | None = 0.0       # start of the idle interval not yet booked
        self.in_flight: tuple | None = None       # (start, cost, decode block or None, batch) of the step running
        # stopped by an autoscaler (sim/autoscale.py): no model loaded, GPUs parked or off
        self.stopped_since: float | None = None
        self.stopped_w = 0.0
        self.stopped_s = 0.0
        self.stopped_energy_j = 0.0

    # ------------------------------------------------------------------ idle time
    def idle_begins(self, now: float) -> None:
        if self.stopped_since is None:   # a stopped replica is not idle (its loop still waits for work)
            self.idle_since = now

    def idle_ends(self, now: float) -> None:
        self.close_idle(now)
        self.idle_since = None

    def close_idle(self, now: float) -> None:
        """Book the idle interval since ``idle_since`` as tool-wait or empty, per the current
        waiters, and its joules (shared equally among the waiting sessions)."""
        t0 = self.idle_since
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
        self.idle_since = now

    def tool_wait_begins(self, session_state: dict, now: float) -> None:
        """A session homed here starts a tool call (it may have several in flight)."""
        self.close_idle(now)
        entry = self.tool_waiters.setdefault(id(session_state), [session_state, 0])
        entry[1] += 1

    def tool_wait_ends(self, session_state: dict, now: float) -> None:
        self.close_idle(now)
        entry = self.tool_waiters[id(session_state)]
        entry[1] -= 1
        if entry[1] == 0:
            del self.tool_waiters[id(session_state)]

    # ------------------------------------------------------------ stopped time
    def stop(self, now: float, watts: float) -> None:
        """The replica stops serving at ``now`` (nothing in flight): its idle interval ends and it
        draws ``watts`` (parked or off) until ``start``; neither busy nor idle time."""
        self.close_idle(now)
        self.idle_since = None
        self.stopped_since = now
        self.stopped_w = watts

    def close_stopped(self, now: float) -> None:
        """Book the stopped interval since ``stopped_since``: seconds, and joules at ``stopped_w``."""
        t0 = self.stopped_since
        if t0 is None or now <= t0:
            return
        self.stopped_s += now - t0
        if self.idle_w is not None:
            self.stopped_energy_j += self.stopped_w * (now - t0)
            self.bins.add("energy_j", t0, now, self.stopped_w)
        self.stopped_since = now

    def start(self, now: float) -> None:
        """The replica starts at ``now`` (loading the model): from here it is idle at ``idle_w``."""
        self.close_stopped(now)
        self.stopped_since = None
        self.idle_since = now

    # ------------------------------------------------------------------ busy time
    def step_begins(self, t0: float, cost, kv_used: int) -> None:
        """One step of ``cost`` starts at ``t0`` with ``kv_used`` KV blocks in use (its KV
        block-seconds are booked now, for the whole step)."""
        if kv_used > self.peak_kv_blocks:
            self.peak_kv_blocks = kv_used
        self.kv_block_seconds += kv_used * cost.seconds
        self.bins.add("kv_block_s", t0, t0 + cost.seconds, kv_used)
        self.in_flight = (t0, cost, None, 0)

    def step_ends(self, plan) -> None:
        """The step begun last ended: count it and share its joules among ``plan.items``
        (``(request, tokens)`` pairs) by tokens."""
        t0, cost, _, _ = self.in_flight
        self.in_flight = None
        self.steps += 1
        self.prefill_tokens += plan.prefill_tokens
        self.decode_tokens += plan.decode_seqs
        self.bins.add("batch_s", t0, t0 + cost.seconds, len(plan.items))
        e = self.book_busy(t0, cost.seconds, cost)
        if e is not None:
            per_token = e / plan.tokens
            for r, n in plan.items:
                r.energy_j += per_token * n

    def block_begins(self, t0: float, cost, block, batch: int) -> None:
        """A block of decode steps (``core.step.DecodeBlock``) of ``batch`` sequences starts at ``t0``."""
        self.in_flight = (t0, cost, block, batch)

    def block_ends(self, plan, k: int, kv_used_before: int, kv_used_after: int) -> None:
        """The block begun last ended after ``k`` steps: count them, share their joules equally
        among its ``batch`` requests (one token each a step), and book its KV use (linear between
        ``kv_used_before`` and ``kv_used_after``, the latter counted before finished requests
        freed their blocks)."""
        t0, cost, blk, b = self.in_flight
        self.in_flight = None
        dt = blk.end(k)
        self.steps += k
        self.decode_tokens += b * k
        e = self.book_busy(t0, dt, cost, blk.energy(k))
        if e is not None:
            share = e / b
            for r, _ in plan.items:
                r.energy_j += share
        if kv_used_after > self.peak_kv_blocks:
            self.peak_kv_blocks = kv_used_after
        self.kv_block_seconds += 0.5 * (kv_used_before + kv_used_after) * dt
        self.bins.add("kv_block_s", t0, t0 + dt, 0.5 * (kv_used_before + kv_used_after))
        self.bins.add("batch_s", t0, t0 + dt, b)

    def book_busy(self, t0: float, dt: float, cost, joules: float | None = None) -> float | None:
        """Book ``dt`` busy seconds from ``t0`` at ``cost``: busy and capped time, and the joules
        (``joules`` when given, e.g. a decode block's closed form, else the step's watts × dt;
        returned; None when the profile has no power model)."""
        self.busy_s += dt
        bins = self.bins
        bins.add("busy_s", t0, t0 + dt, 1.0)
        if cost.clock_fraction < 1.0:
            bins.add("capped_s", t0, t0 + dt, 1.0)
        if cost.watts is None:
            return None
        if joules is None:
            e, w = cost.watts * dt, cost.watts
        else:
            e, w = joules, (joules / dt if dt > 0 else cost.watts)
        self.busy_energy_j += e
        bins.add("energy_j", t0, t0 + dt, w)
        return e

    # ------------------------------------------------------------------ the end
    def close(self, t_end: float) -> None:
        """Close the books at the end of the run: the part of a step still running at ``t_end``
        (busy time and energy up to ``t_end``; its tokens are not counted, the step did not end;
        of a decode block, the steps that did end are), then the idle tail."""
        if self.in_flight is not None:
            t0, cost, blk, b = self.in_flight
            self.in_flight = None
            if blk is not None:   # a decode block: its steps that ended by t_end did happen
                k = blk.steps_started_by(t_end - t0)
                done = k if blk.end(k) <= t_end - t0 else k - 1
                self.steps += done
                self.decode_tokens += b * done
                if t_end > t0:
                    e = blk.energy(done)
                    if e is not None:   # the steps that ended, then the one in progress at its watts
                        e += blk.step_watts(done) * (t_end - t0 - blk.end(done))
                    self.book_busy(t0, t_end - t0, cost, e)
            elif t_end > t0:
                self.book_busy(t0, t_end - t0, cost)
        self.close_idle(t_end)
        self.close_stopped(t_end)

    def row(self) -> dict[str, Any]:
        """The counter row of this replica (energies NaN when the profile has no power model)."""
        nan = float("nan")
        energy = self.idle_w is not None
        return {
            "replica": self.index,
            "busy_s": self.busy_s,
            "capped_s": self.bins.total("capped_s"),
            "steps": self.steps,
            "events": self.events,
            "prefill_tokens": self.prefill_tokens,
            "decode_tokens": self.decode_tokens,
            "preemptions": self.preemptions,
            "busy_energy_j": self.busy_energy_j if energy else nan,
            "idle_energy_j": self.idle_energy_j if energy else nan,
            "idle_tool_energy_j": self.idle_tool_energy_j if energy else nan,
            "energy_bins_j": self.bins.total("energy_j") if energy else nan,
            "peak_kv_blocks": self.peak_kv_blocks,
            "kv_block_seconds": self.kv_block_seconds,
        }
