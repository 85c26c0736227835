"""vLLM-like step composition: continuous batching, chunked prefill, preemption by recompute.

No SimPy here. ``schedule(state)`` picks the tokens of the next engine step (the analogue of
vLLM's ``schedule()``); ``complete(state, plan, now)`` applies its outcome (the analogue of
``update_from_output``). There is no prefill or decode phase: each request's ``num_computed``
catches up with ``num_tokens`` (prompt + generated), spending a per-step token budget, running
requests first (oldest first), then waiting ones (FCFS). When KV blocks run out, the most recently
admitted running request is preempted: its blocks are released (cached ones stay in the prefix
cache) and it goes back to the head of the waiting queue to be recomputed.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from agentwatt.sim.kv import BlockManager


class Request:
    """One LLM call inside a replica. Times in simulated seconds; ``None`` until they happen."""

    __slots__ = ("rid", "prompt_len", "output_len", "hashes", "blocks", "num_computed",
                 "num_generated", "n_registered", "submit_s", "start_s", "first_token_s", "finish_s",
                 "cached_tokens", "prefill_computed", "preemptions", "energy_j", "done", "tag",
                 "admitted", "retain", "unpin_on_admit", "pin_id", "loaded", "host_blocks")

    def __init__(self, rid: int, prompt_len: int, output_len: int, hashes: list[int],
                 submit_s: float, done: Any = None, tag: Any = None) -> None:
        self.rid = rid
        self.prompt_len = prompt_len
        self.output_len = output_len
        self.hashes = hashes
        self.blocks: list[int] = []
        self.num_computed = 0
        self.num_generated = 0
        self.n_registered = 0
        self.submit_s = submit_s
        self.start_s: float | None = None      # first admitted into a step (queueing delay = start - submit)
        self.first_token_s: float | None = None
        self.finish_s: float | None = None
        self.cached_tokens: int | None = None  # prefix-cache hit at first admission
        self.prefill_computed = 0              # prompt(+recompute) tokens actually computed
        self.preemptions = 0
        self.energy_j = 0.0
        self.done = done                       # completion callback target (set by the shell)
        self.tag = tag                         # opaque: who asked (session, node)
        self.admitted = False
        self.retain = False                    # keep KV pinned after finishing (retention policy)
        self.unpin_on_admit: list[int] = []    # pins of this session to drop once admitted
        self.pin_id: int | None = None         # set by complete() when retained
        self.loaded = 0                        # tokens whose KV arrived from elsewhere (a prefill pool's transfer)
        self.host_blocks = 0                   # blocks after the GPU hit loaded from a host tier (sim/kvtier.py)

    @property
    def num_tokens(self) -> int:
        return self.prompt_len + self.num_generated


@dataclass(slots=True)
class StepPlan:
    """The work of one engine step: (request, tokens) pairs plus the latency-model features."""

    items: list[tuple[Request, int]] = field(default_factory=list)
    prefill_tokens: int = 0
    prefill_attn: int = 0
    decode_seqs: int = 0
    decode_ctx: int = 0
    preempted: int = 0
    dropped: list[Request] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prefill_tokens + self.decode_seqs


@dataclass(slots=True)
class ReplicaState:
    kv: BlockManager
    max_num_seqs: int
    max_num_batched_tokens: int
    waiting: deque = field(default_factory=deque)
    running: list = field(default_factory=list)
    pins: OrderedDict = field(default_factory=OrderedDict)  # pin id -> blocks kept for a session
    next_pin: int = 0
    unpinned_for_memory: int = 0
    now: float = 0.0          # the time of the step being scheduled (set by the replica; stamps start_s)
    on_pin_dropped: Any = None   # callback(blocks) before a pin is dropped for memory (sim/kvtier.py spills it)
    host_match: Any = None       # callback(hashes, start, end) -> blocks of hashes[start:end] a host tier holds

    @property
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.running)


def _is_decode(r: Request, n: int) -> bool:
    """One new token for a request that has already produced output: a decode step."""
    return r.num_generated > 0 and n == 1 and r.num_computed == r.num_tokens - 1


def _add(plan: StepPlan, r: Request, n: int) -> None:
    plan.items.append((r, n))
    if _is_decode(r, n):
        plan.decode_seqs += 1
        plan.decode_ctx += r.num_computed + 1
    else:
        plan.prefill_tokens += n
        plan.prefill_attn += n * (r.num_computed + n)


def pin(state: ReplicaState, blocks: list[int]) -> int:
    """Keep ``blocks`` referenced (KV retained while a session waits on a tool)."""
    pid = state.next_pin
    state.next_pin += 1
    state.pins[pid] = blocks
    return pid


def unpin(state: ReplicaState, pid: int | None) -> None:
    """Release a pin (no-op if it is gone already); its cached blocks stay in the prefix cache."""
    blocks = state.pins.pop(pid, None) if pid is not None else None
    if blocks:
        state.kv.release(blocks)


def _free_pins_for(state: ReplicaState, need: int) -> None:
    """Retention is a hint: under memory pressure drop the oldest pins before anything else."""
    while need > state.kv.num_free and state.pins:
        _, blocks = state.pins.popitem(last=False)
        if state.on_pin_dropped is not None:
            state.on_pin_dropped(blocks)
        state.kv.release(blocks)
        state.unpinned_for_memory += 1


def _preempt(state: ReplicaState, r: Request) -> None:
    state.kv.release(r.blocks)
    r.blocks = []
    r.num_computed = 0
    r.loaded = 0          # transferred KV is gone with the blocks: recompute here
    r.n_registered = 0
    r.preemptions += 1
    state.waiting.appendleft(r)


def _schedule_running(state: ReplicaState, plan: StepPlan) -> int:
    """Running requests first, oldest first: each gets its remaining prompt chunk or one decode
    token while the budget lasts; when blocks run out, preempt from the tail. (The hot loop of the
    simulator: ``_add`` and ``_is_decode`` are inlined here.)"""
    budget = state.max_num_batched_tokens
    kv = state.kv
    bs = kv.block_size
    running = state.running
    items = plan.items
    ptok = pattn = dseq = dctx = 0
    i = 0
    while i < len(running) and budget > 0:
        r = running[i]
        nc = r.num_computed
        ntok = r.prompt_len + r.num_generated
        n = ntok - nc
        if n > budget:
            n = budget
        need = -(-(nc + n) // bs) - len(r.blocks)
        if need > 0:
            if need > kv.num_free:
                _free_pins_for(state, need)
            preempted_self = False
            while need > kv.num_free:
                victim = running.pop()
                _preempt(state, victim)
                plan.preempted += 1
                if victim is r:
                    preempted_self = True
                    break
            if preempted_self:
                break  # r itself was preempted: it was the last running request
            r.blocks.extend(kv.allocate(need))
        items.append((r, n))
        if n == 1 and nc == ntok - 1 and r.num_generated > 0:
            dseq += 1
            dctx += nc + 1
        else:
            ptok += n
            pattn += n * (nc + n)
        budget -= n
        i += 1
    plan.prefill_tokens += ptok
    plan.prefill_attn += pattn
    plan.decode_seqs += dseq
    plan.decode_ctx += dctx
    return budget


def _schedule_waiting(state: ReplicaState, plan: StepPlan, budget: int) -> None:
    kv = state.kv
    bs = kv.block_size
    waiting, running = state.waiting, state.running
    while waiting and budget > 0 and len(running) < state.max_num_seqs:
        r = waiting[0]
        total_blocks = kv.blocks_for(r.num_tokens)
        if total_blocks > kv.num_blocks:
            waiting.popleft()
            plan.dropped.append(r)
            for pid in r.unpin_on_admit:   # the session's kept KV here is released with the call
                unpin(state, pid)
            r.unpin_on_admit = []
            continue
        hit = kv.match_prefix(r.hashes, (r.num_tokens - 1) // bs)
        host = _host_loaded(state, r, len(hit)) if r.host_blocks else 0
        computed = (len(hit) + host) * bs
        if r.loaded > computed:   # KV transferred in (a prefill pool's): only blocks to hold it, nothing to compute
            computed = r.loaded
        n = min(r.num_tokens - computed, budget)
        new_blocks = kv.blocks_for(computed + n) - len(hit)
        # cost_of(hit, new) <= new + len(hit): only count exactly when that bound does not fit
        if new_blocks + len(hit) > kv.num_free and kv.cost_of(hit, new_blocks) > kv.num_free:
            _free_pins_for(state, kv.cost_of(hit, new_blocks))
            if kv.cost_of(hit, new_blocks) > kv.num_free:
                break
            hit = kv.match_prefix(r.hashes, (r.num_tokens - 1) // bs)  # unpinning may have evicted
            host = _host_loaded(state, r, len(hit)) if r.host_blocks else 0
            computed = max((len(hit) + host) * bs, r.loaded)
            n = min(r.num_tokens - computed, budget)
            new_blocks = kv.blocks_for(computed + n) - len(hit)
            if kv.cost_of(hit, new_blocks) > kv.num_free:
                break
        waiting.popleft()
        kv.take(hit)
        r.blocks = list(hit) + kv.allocate(new_blocks)
        r.num_computed = computed
        r.n_registered = len(hit)
        if host:   # blocks brought back from the host tier: computed, and cached at once
            kv.register(r.blocks, r.hashes, len(hit), len(hit) + host)
            r.n_registered += host
            r.host_blocks = 0
        if not r.admitted:
            r.admitted = True
            r.start_s = state.now
            r.cached_tokens = computed
            kv.hits_blocks += len(hit)
            kv.lookups_blocks += r.prompt_len // bs
        running.append(r)
        if r.unpin_on_admit:
            for pid in r.unpin_on_admit:
                unpin(state, pid)
            r.unpin_on_admit = []
        _add(plan, r, n)
        budget -= n


def _host_loaded(state: ReplicaState, r: Request, gpu_hit: int) -> int:
    """Blocks after a GPU hit of ``gpu_hit`` that the host tier loaded for ``r`` and still holds."""
    end = min((r.num_tokens - 1) // state.kv.block_size, gpu_hit + r.host_blocks)
    return state.host_match(r.hashes, gpu_hit, end) if end > gpu_hit else 0


def schedule(state: ReplicaState) -> StepPlan:
    """Choose this step's tokens; allocates blocks and may preempt (see module docstring)."""
    plan = StepPlan()
    budget = _schedule_running(state, plan)
    if plan.preempted == 0:
        _schedule_waiting(state, plan, budget)
    return plan


def complete(state: ReplicaState, plan: StepPlan, now: float) -> list[Request]:
    """Apply a finished step at time ``now``: advance tokens, stamp first tokens, retire requests.

    Returns the requests that finished in this step (their blocks are released).
    """
    kv = state.kv
    bs = kv.block_size
    caching = kv.prefix_caching
    finished: list[Request] = []
    for r, n in plan.items:
        nc = r.num_computed
        ntok = r.prompt_len + r.num_generated
        if not (n == 1 and nc == ntok - 1 and r.num_generated > 0):   # prompt work, not decode
            r.prefill_computed += n
        nc += n
        r.num_computed = nc
        if caching:
            full = nc // bs
            if full > r.n_registered:
                kv.register(r.blocks, r.hashes, r.n_registered, full)
                r.n_registered = full
        if nc == ntok:
            r.num_generated += 1
            if r.first_token_s is None:
                r.first_token_s = now
            if r.num_generated >= r.output_len:
                r.finish_s = now
                finished.append(r)
    if finished:
        done = set(id(r) for r in finished)
        state.running = [r for r in state.running if id(r) not in done]
        for r in finished:
            if r.retain:
                r.pin_id = pin(state, r.blocks)
            else:
                kv.release(r.blocks)
            r.blocks = []
    return finished


# --------------------------------------------------------------------------- multi-step decode
def decode_run_length(state: ReplicaState, plan: StepPlan) -> int:
    """How many identical decode steps can run back to back from ``plan`` (≥ 1).

    The batch keeps its members while nobody waits, nobody is prefilling, nobody finishes and the
    KV blocks the steps need are free now: then k steps can be advanced in one event. ``plan`` has
    already allocated what its first step needs.
    """
    if state.waiting or plan.prefill_tokens or not plan.decode_seqs or plan.dropped or plan.preempted:
        return 1
    kv = state.kv
    k = min(r.output_len - r.num_generated for r, _ in plan.items)
    if k <= 1:
        return 1
    need = sum(kv.blocks_for(r.num_computed + k) - len(r.blocks) for r, _ in plan.items)
    while need > kv.num_free and k > 1:   # shrink until the blocks fit (rare)
        k = max(1, k // 2)
        need = sum(kv.blocks_for(r.num_computed + k) - len(r.blocks) for r, _ in plan.items)
    return k


def advance_decode(state: ReplicaState, plan: StepPlan, k: int, now: float) -> list[Request]:
    """Apply k decode steps of ``plan`` at once (the result of k ``complete`` calls on an unchanged
    batch, up to which free blocks each request got). Returns the requests that finished."""
    kv = state.kv
    bs = kv.block_size
    finished: list[Request] = []
    for r, _ in plan.items:
        extra = kv.blocks_for(r.num_computed + k) - len(r.blocks)
        if extra > 0:
            r.blocks.extend(kv.allocate(extra))
        r.num_computed += k
        r.num_generated += k
        full = r.num_computed // bs
        if full > r.n_registered:
            kv.register(r.blocks, r.hashes, r.n_registered, full)
            r.n_registered = full
        if r.num_generated >= r.output_len:
            r.finish_s = now
            finished.append(r)
    if finished:
        done = set(id(r) for r in finished)
        state.running = [r for r in state.running if id(r) not in done]
        for r in finished:
            if r.retain:
                r.pin_id = pin(state, r.blocks)
            else:
                kv.release(r.blocks)
            r.blocks = []
    return finished
