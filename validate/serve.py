"""A real continuous-batching serving loop on the calibration model (used by ``calibrate check``).

    arrivals (seeded) ─► waiting queue ─► sim.batching.schedule   (the simulator's own scheduler:
                                          token budget per step, chunked prefill, running first,
                                          then FCFS, max_num_seqs)
                       ─► model_step on the model (calibrate/batchstep.py), argmax sampling
                       ─► sim.batching.complete(now)  (stamps first tokens and finishes)

Using the simulator's scheduler means the loop and the simulation put the same requests in the same
steps whenever their clocks agree; any difference in latency then comes from step times, which is
what a profile claims to predict. The scheduler's block pool is sized so that nothing is ever
preempted (the simulation gets the same capacity).

KV slots (``Slots``): decoding requests occupy pool slots ``0..D-1`` so their attention is one padded
call over a view of the pool (see ``batchstep``). A request is prefilled in a free slot taken from the
top; when it starts decoding it moves to slot ``D``; when a decoder finishes, the last decoder moves
into its slot. A move copies one request's KV once, outside the scheduler's view (it is counted in
the step's time like the rest of the loop's bookkeeping).

Clock. ``virtual``: each step is timed with ``timer`` (thread CPU time for a one-thread CPU
profile, the timer the calibration sweep used) and the loop's clock advances by exactly that
(scheduling, model forward, sampling and bookkeeping all counted); when no request is in the
system the clock jumps to the next arrival. Other processes stealing the core then do not appear
as serving time, as they did not in the sweep. ``wall``: real time, sleeping until arrivals (CUDA,
or whenever an energy meter runs, because energy happens in real time).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from agentwatt.calibrate.batchstep import KVPool, Segment, model_step
from agentwatt.calibrate.models import Decoder
from agentwatt.core.errors import InputError
from agentwatt.sim.batching import ReplicaState, Request, complete, schedule
from agentwatt.sim.kv import BlockManager


@dataclass(frozen=True)
class RequestSpec:
    arrival_s: float
    prompt_tokens: int
    output_tokens: int


def generate_requests(seed: int, rate_per_s: float, duration_s: float, prompt_tokens: int, output_tokens: int,
                      lengths: str = "lognormal", sigma: float = 0.5, max_prompt: int | None = None,
                      max_output: int | None = None) -> list[RequestSpec]:
    """Poisson arrivals on ``[0, duration_s)`` shifted so the first is at 0, with fixed or lognormal
    lengths (lognormal: mean ``prompt_tokens``/``output_tokens`` before clipping to ``[1, max]``)."""
    from agentwatt.traces.arrivals import poisson_arrivals
    if lengths not in ("fixed", "lognormal"):
        raise InputError(f"--lengths {lengths!r}: expected 'fixed' or 'lognormal'")
    if not (duration_s > 0):
        raise InputError(f"--minutes = {duration_s / 60:g}: expected a number > 0")
    for flag, v in (("--prompt-tokens", prompt_tokens), ("--output-tokens", output_tokens)):
        if v < 1:
            raise InputError(f"{flag} = {v}: expected an integer >= 1")
    arr_rng, len_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    times = list(poisson_arrivals(arr_rng, rate_per_s, 0.0, duration_s))
    if not times:
        times = [0.0]
    t0 = times[0]
    n = len(times)

    def draw(mean: int, cap: int | None) -> np.ndarray:
        if lengths == "fixed":
            v = np.full(n, mean)
        else:
            v = np.rint(mean * np.exp(sigma * len_rng.standard_normal(n) - sigma**2 / 2))
        return np.clip(v, 1, cap if cap is not None else None).astype(int)

    p, o = draw(prompt_tokens, max_prompt), draw(output_tokens, max_output)
    return [RequestSpec(t - t0, int(a), int(b)) for t, a, b in zip(times, p, o)]


@dataclass
class StepRecord:
    start_s: float
    end_s: float
    total_s: float          # the whole iteration on the step timer (schedule .. bookkeeping)
    forward_s: float        # model forward + sampling only
    prefill_tokens: int
    prefill_attn: int
    decode_seqs: int
    decode_ctx: int
    items: list[tuple[int, int]]   # (request index, tokens computed for it)
    padding_tokens: int = 0        # KV positions the padded decode attention read beyond sum(ctx)
    batched_decode: bool = True
    span_s: float | None = None    # loop clock from start until the next step could begin (bookkeeping included)


@dataclass
class ServeResult:
    specs: list[RequestSpec]
    first_token_s: np.ndarray
    finish_s: np.ndarray
    steps: list[StepRecord]
    clock: str
    timer: str
    wall_s: float
    kv_capacity_tokens: int
    power: Any = None                       # PowerSeries when a meter ran
    energy_j: np.ndarray | None = None      # per request (busy steps, shared by tokens)
    energy_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def arrival_s(self) -> np.ndarray:
        return np.array([s.arrival_s for s in self.specs])


class Slots:
    """Which pool slot holds which request; decoders kept in slots ``0..D-1`` (module docstring)."""

    def __init__(self, pool: KVPool, n_slots: int):
        self.pool = pool
        self.rid_at: list[int | None] = [None] * n_slots
        self.slot_of: dict[int, int] = {}
        self.req_of: dict[int, Request] = {}
        self.free = set(range(n_slots))
        self.decoders = 0
        self.moves = 0

    def admit(self, r: Request) -> int:
        s = max(self.free)
        self.free.remove(s)
        self.rid_at[s], self.slot_of[r.rid], self.req_of[r.rid] = r.rid, s, r
        return s

    def _move(self, rid: int, dst: int) -> None:
        src = self.slot_of[rid]
        self.pool.move(src, dst, self.req_of[rid].num_computed)
        self.rid_at[src], self.rid_at[dst], self.slot_of[rid] = None, rid, dst
        self.moves += 1

    def after_step(self, items: list[tuple[Request, int]], finished: list[Request]) -> None:
        gone = {r.rid for r in finished}
        for r in finished:
            s = self.slot_of[r.rid]
            if s < self.decoders:                     # a decoder left: the last decoder fills its slot
                last = self.decoders - 1
                self.rid_at[s] = None
                if s != last:
                    self._move(self.rid_at[last], s)
                self.free.add(last)
                self.decoders -= 1
            else:                                     # finished at its first token (one output token)
                self.rid_at[s] = None
                self.free.add(s)
            del self.slot_of[r.rid], self.req_of[r.rid]
        for r, _ in items:                            # prefills that produced their first token now decode
            if r.rid in gone or r.num_generated == 0 or self.slot_of[r.rid] < self.decoders:
                continue
            target = self.decoders
            if self.slot_of[r.rid] != target:
                squatter = self.rid_at[target]
                if squatter is not None:              # a prefilling request sits where decoders grow
                    spare = max(self.free)
                    self.free.remove(spare)
                    self._move(squatter, spare)
                else:
                    self.free.remove(target)
                old = self.slot_of[r.rid]
                self._move(r.rid, target)
                self.free.add(old)
            self.decoders += 1


def kv_capacity_for(specs: list[RequestSpec], max_num_seqs: int, block_size: int) -> int:
    """Tokens of KV that hold ``max_num_seqs`` of the longest requests: no preemption can happen."""
    longest = max(s.prompt_tokens + s.output_tokens for s in specs)
    return max_num_seqs * block_size * math.ceil(longest / block_size) + block_size


def serve(model: Decoder, specs: list[RequestSpec], *, max_num_seqs: int, max_num_batched_tokens: int,
          clock: str, timer: Callable[[], float], timer_name: str, sync: Callable[[], None] = lambda: None,
          seed: int = 0, block_size: int = 16, meter=None, progress: Callable[[int], None] | None = None) -> ServeResult:
    """Serve ``specs`` (sorted by arrival) to completion; see the module docstring."""
    if clock not in ("virtual", "wall"):
        raise ValueError(f"clock {clock!r}")
    cap_tokens = kv_capacity_for(specs, max_num_seqs, block_size)
    state = ReplicaState(kv=BlockManager(cap_tokens // block_size, block_size, prefix_caching=False),
                         max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens)
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    longest = max(sp.prompt_tokens + sp.output_tokens for sp in specs)
    slots = Slots(KVPool.allocate(model, max_num_seqs + 1, longest), max_num_seqs + 1)
    token_ids: dict[int, torch.Tensor] = {}
    n = len(specs)
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    steps: list[StepRecord] = []
    virtual = clock == "virtual"
    origin = time.perf_counter()
    wall_now = lambda: time.perf_counter() - origin  # noqa: E731
    sampler = None
    if meter is not None and meter.available:
        from agentwatt.calibrate.powerseries import PowerSampler
        sampler = PowerSampler(meter, origin=origin).__enter__()
    now, nxt, done = 0.0, 0, 0
    try:
        while done < n:
            if not virtual:
                now = wall_now()
            while nxt < n and specs[nxt].arrival_s <= now:
                s = specs[nxt]
                ids = torch.empty(s.prompt_tokens + s.output_tokens, dtype=torch.long)
                ids[:s.prompt_tokens] = torch.randint(0, cfg.vocab_size, (s.prompt_tokens,), generator=gen)
                token_ids[nxt] = ids
                state.waiting.append(Request(nxt, s.prompt_tokens, s.output_tokens, [], s.arrival_s))
                nxt += 1
            if not state.outstanding:
                if virtual:
                    now = specs[nxt].arrival_s
                else:
                    time.sleep(max(0.0, specs[nxt].arrival_s - wall_now()))
                continue
            t0 = timer()
            start = now if virtual else wall_now()
            plan = schedule(state)
            if plan.dropped or plan.preempted:
                raise RuntimeError("serving loop: a request was dropped or preempted: KV pool too small (a bug)")
            dec, pre = [], []
            for r, k in plan.items:
                if r.rid not in slots.slot_of:
                    slots.admit(r)
                ids = token_ids[r.rid]
                want = r.num_computed + k == r.num_tokens
                is_dec = r.num_generated > 0 and k == 1 and want
                (dec if is_dec else pre).append((r, Segment(ids[r.num_computed:r.num_computed + k], r.num_computed,
                                                            slots.slot_of[r.rid], decode=is_dec, want_logits=want)))
            dec.sort(key=lambda x: x[1].slot)
            order = dec + pre
            f0 = timer()
            logits, info = model_step(model, slots.pool, [sg for _, sg in order])
            sampled = logits.argmax(-1).cpu() if logits.shape[0] else logits
            sync()
            f1 = timer()
            j = 0
            for r, sg in order:
                if sg.want_logits:
                    if r.num_tokens < token_ids[r.rid].shape[0]:
                        token_ids[r.rid][r.num_tokens] = sampled[j]
                    j += 1
            t1 = timer()
            end = now + (t1 - t0) if virtual else wall_now()
            finished = complete(state, plan, end)
            slots.after_step(plan.items, finished)
            for r in finished:
                first[r.rid], finish[r.rid] = r.first_token_s, r.finish_s
                del token_ids[r.rid]
                done += 1
                if progress is not None:
                    progress(1)
            t2 = timer()
            span = t2 - t0 if virtual else wall_now() - start
            steps.append(StepRecord(start_s=start, end_s=end, total_s=t2 - t0, forward_s=f1 - f0, span_s=span,
                                    prefill_tokens=plan.prefill_tokens, prefill_attn=plan.prefill_attn,
                                    decode_seqs=plan.decode_seqs, decode_ctx=plan.decode_ctx,
                                    items=[(r.rid, k) for r, k in plan.items], padding_tokens=info.padding_tokens,
                                    batched_decode=info.batched_decode or not plan.decode_seqs))
            if virtual:
                now = end + (t2 - t1)
    finally:
        if sampler is not None:
            sampler.__exit__(None, None, None)
    res = ServeResult(specs=specs, first_token_s=first, finish_s=finish, steps=steps, clock=clock, timer=timer_name,
                      wall_s=wall_now(), kv_capacity_tokens=cap_tokens)
    res.notes.append(f"{slots.moves} KV slot moves (one request's cache copied each)")
    if meter is None or not meter.available:
        res.energy_reason = (meter.reason if meter is not None else None) or "no energy meter"
    else:
        res.power = sampler.series
        res.energy_j, res.energy_reason = attribute_energy(steps, res.power, n)
    return res


def attribute_energy(steps: list[StepRecord], power, n_requests: int) -> tuple[np.ndarray | None, str | None]:
    """Each step's metered joules shared by the tokens each request computed in it (the simulator's rule)."""
    if power is None or len(power.t0) == 0:
        why = "; ".join(power.failures) if power is not None and power.failures else "no samples"
        return None, f"the power sampler recorded no intervals ({why})"
    out = np.zeros(n_requests)
    missed = 0
    for st in steps:
        e = power.energy_j(st.start_s, st.end_s)
        if e is None:
            missed += 1
            continue
        tokens = sum(k for _, k in st.items)
        for rid, k in st.items:
            out[rid] += e * k / tokens
    if missed > len(steps) // 100:
        return None, f"{missed} of {len(steps)} steps fell outside the power series"
    return out, None


def trace_rows(res: ServeResult, steps: list[StepRecord] | None = None) -> list[tuple]:
    """The loop's steps as step-trace rows (``core/steptrace.py``): ``duration_s`` is the loop clock a
    step occupies (schedule, forward, sampling and bookkeeping, until the next step could begin),
    ``energy_j`` the power series' joules over it (empty without a meter)."""
    rows = []
    for st in res.steps if steps is None else steps:
        span = max(st.span_s if st.span_s is not None else st.end_s - st.start_s, 1e-9)
        e = res.power.energy_j(st.start_s, st.start_s + span) if res.power is not None else None
        rows.append((float(st.start_s), float(span), st.prefill_tokens, st.prefill_attn, st.decode_seqs,
                     st.decode_ctx, e))
    return rows


def write_trace(res: ServeResult, path, comment: str | None = None):
    """Write the loop's step trace as CSV (the format ``agentwatt calibrate fit-trace`` reads)."""
    from agentwatt.core.steptrace import write_step_trace
    return write_step_trace(path, trace_rows(res), comment=comment)
