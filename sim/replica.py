"""One vLLM-like replica as a SimPy process: one event per engine step.

The loop: sleep while there is no work; else ``batching.schedule`` → step time and watts from
``core/step.py`` (stretched by a power cap if one binds) → ``env.timeout(step)`` →
``batching.complete``. Where the batch stays unchanged for k decode steps they run as one event (a
``DecodeBlock``), cut short at a step boundary when a new request arrives.

What the replica did and drew is kept by its ``ReplicaBooks`` (``sim/books.py``): busy, idle-tool,
idle-empty and capped seconds and joules per time bin, each request's share of a step's joules by
tokens, the idle-tool joules shared among the sessions waiting on tools, KV use. ``counters()`` is
the replica's row for the summary. A load-aware router learns of each change of the outstanding
count through ``on_load``.

With ``[run] step_trace = true`` the replica also keeps one row per engine step that ended
(``trace``, ``core/steptrace.py`` columns): a decode block of k steps adds k rows from its closed
form (step j starts at ``DecodeBlock.end(j)``, takes ``first + growth_s·j`` and reads ``D·j`` more
context tokens), so tracing leaves step skipping, and every simulated number, as they are.
"""
from __future__ import annotations

from typing import Any

import simpy

from agentwatt.core.profile import Profile
from agentwatt.core import step
from agentwatt.sim.batching import (ReplicaState, Request, advance_decode, complete,
                                    decode_run_length, schedule)
from agentwatt.sim.books import ReplicaBooks
from agentwatt.sim.kv import BlockManager, CountingBlockManager


class Replica:
    def __init__(self, env: simpy.Environment, index: int, profile: Profile, *, num_blocks: int,
                 block_size: int, max_num_seqs: int, max_num_batched_tokens: int,
                 prefix_caching: bool, resolution_s: float, cap_w_per_gpu: float | None = None,
                 step_skipping: bool = True, step_trace: bool = False) -> None:
        self.env = env
        self.index = index
        self.profile = profile
        kv = BlockManager(num_blocks, block_size) if prefix_caching else CountingBlockManager(num_blocks, block_size)
        self.state = ReplicaState(kv=kv,
                                  max_num_seqs=max_num_seqs,
                                  max_num_batched_tokens=max_num_batched_tokens)
        self.cap_w_per_gpu = cap_w_per_gpu
        self.step_skipping = step_skipping
        self.books = ReplicaBooks(index, step.idle_power_w(profile), resolution_s)
        self.on_load = None   # callback(index, outstanding) on each change (set by a load-aware router)
        self.on_empty = None  # callback(replica) when it runs out of work (set by an autoscaler)
        # one row per step that ended (core/steptrace.py COLUMNS order) when the run keeps a step trace
        self.trace: list[tuple] | None = [] if step_trace else None
        self._wake: simpy.Event | None = None
        env.process(self._loop())

    @property
    def outstanding(self) -> int:
        return self.state.outstanding

    @property
    def bins(self):
        """The per-bin channels (``books.bins``)."""
        return self.books.bins

    @property
    def idle_w(self) -> float | None:
        """Replica watts with no step running (``books.idle_w``)."""
        return self.books.idle_w

    def submit(self, req: Request) -> None:
        self.state.waiting.append(req)
        self._load_changed()
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def tool_wait_begins(self, session_state: dict) -> None:
        """A session whose context this replica holds starts a tool call (the GPU may idle)."""
        self.books.tool_wait_begins(session_state, self.env.now)

    def tool_wait_ends(self, session_state: dict) -> None:
        self.books.tool_wait_ends(session_state, self.env.now)

    def finish(self, t_end: float) -> None:
        """Close the books at the end of the run (``ReplicaBooks.close``)."""
        self.books.close(t_end)

    def counters(self) -> dict[str, Any]:
        """This replica's counter row: the books' row, its KV capacity and cache lookups, and the
        requests still outstanding."""
        st, kv = self.state, self.state.kv
        return {**self.books.row(), "kv_blocks": kv.num_blocks, "outstanding": st.outstanding,
                "kv_lookup_blocks": kv.lookups_blocks, "kv_hit_blocks": kv.hits_blocks,
                "kv_pins_dropped_for_memory": st.unpinned_for_memory}

    def _load_changed(self) -> None:
        if self.on_load is not None:
            self.on_load(self.index, self.state.outstanding)

    # ------------------------------------------------------------ the step loop
    def _decode_block(self, plan, k: int, cost, blk):
        """k decode steps of an unchanged batch in one event; a new arrival cuts the block short
        at the end of the step in progress (the engine would admit it at that step boundary)."""
        env, st = self.env, self.state
        b = plan.decode_seqs
        t0 = env.now
        used0 = st.kv.num_used
        total = blk.end(k)
        wake = self._wake = env.event()   # a new arrival or the block's end, whichever first
        env.timeout(total).callbacks.append(lambda _t: wake.triggered or wake.succeed())
        self.books.block_begins(t0, cost, blk, b)
        yield wake
        self._wake = None
        elapsed = env.now - t0
        if elapsed < total:
            k = min(k, blk.steps_started_by(elapsed))   # the step in progress completes
            end_k = blk.end(k)
            if end_k > elapsed:
                yield env.timeout(end_k - elapsed)
        if self.trace is not None:   # the block's k steps one by one, from its closed form
            ctx, g_j = plan.decode_ctx, blk.energy_growth
            for j in range(k):
                e = None if blk.energy0 is None else blk.energy0 + g_j * j
                self.trace.append((t0 + blk.end(j), blk.first + blk.growth_s * j, 0, 0, b, ctx + b * j, e))
        finished = advance_decode(st, plan, k, env.now)
        used1 = st.kv.num_used + sum(len(r.blocks) for r in finished)  # before finished ones freed
        self.books.block_ends(plan, k, used0, used1)
        if finished:
            self._load_changed()
        for r in finished:
            r.done.succeed(r)

    def _loop(self):
        env, st, prof, books = self.env, self.state, self.profile, self.books
        while True:
            if not st.outstanding:
                books.idle_begins(env.now)
                if self.on_empty is not None:
                    self.on_empty(self)
                self._wake = env.event()
                yield self._wake
                self._wake = None
                books.idle_ends(env.now)
            st.now = env.now
            plan = schedule(st)
            if plan.dropped:
                self._load_changed()
            for r in plan.dropped:
                r.done.succeed(r)
            books.preemptions += plan.preempted
            if not plan.items:
                continue
            cost = step.step_cost(prof, plan.prefill_tokens, plan.prefill_attn, plan.decode_seqs, plan.decode_ctx,
                                  self.cap_w_per_gpu)
            books.events += 1
            if self.step_skipping and cost.clock_fraction >= 1.0:   # a binding cap: one step at a time
                k = decode_run_length(st, plan)
                blk = step.decode_block_cost(prof, plan.decode_seqs, plan.decode_ctx, k) if k > 1 else None
                if blk is not None:
                    yield from self._decode_block(plan, k, cost, blk)
                    continue
            t0 = env.now
            books.step_begins(t0, cost, st.kv.num_used)
            yield env.timeout(cost.seconds)
            books.step_ends(plan)
            if self.trace is not None:
                self.trace.append((t0, cost.seconds, plan.prefill_tokens, plan.prefill_attn, plan.decode_seqs,
                                   plan.decode_ctx, None if cost.watts is None else cost.watts * cost.seconds))
            finished = complete(st, plan, env.now)
            if finished:
                self._load_changed()
            for r in finished:
                r.done.succeed(r)
