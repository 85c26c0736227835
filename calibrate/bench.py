"""The calibration sweep: prefill over prompt length x batch, decode over batch x context.

The sweep visits every point ``rounds`` times, each round in a fresh seeded random order (to spread
thermal drift and bursts of background load). A visit times ``repeats`` single steps (device
synchronised around each), after allocating the point's inputs and warming up when it has not kept
them from an earlier visit; a point keeps the median and quartiles of all its samples. In the
first round, when a meter exists, the same step also runs back to back inside one energy window
of at least ``min_energy_window_s``, and the energy is divided by the steps; that round starts with
one decode point per batch size (shortest context) and one prefill point, so that a sweep cut short
by its time budget still has decode power at several batch sizes for the power fit. Idle power is
measured once before the sweep.

Step features per point (the profile's latency model; see ``core/profile.py``):

    prefill of B prompts of length L:   P = B*L   A = B*L*L   D = 0   C = 0
    decode of B sequences at context C: P = 0     A = 0       D = B   C = B*C
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from agentwatt.calibrate.meters import Measurement, Meter
from agentwatt.calibrate.models import (Decoder, decode_step, kv_cache_bytes, new_kv_cache, prefill,
                                        random_token_ids)

@dataclass(frozen=True, kw_only=True)
class SweepGrid:
    prompt_lens: tuple[int, ...]
    prefill_batches: tuple[int, ...]
    decode_batches: tuple[int, ...]
    context_lens: tuple[int, ...]
    repeats: int = 5            # timed steps per visit of a point
    rounds: int = 1             # visits of every point, each round in a fresh random order
    warmup: int = 2             # untimed steps per visit
    min_energy_window_s: float = 1.0
    idle_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("repeats", "rounds"):
            v = getattr(self, name)
            if v < 1 or v % 2 == 0:  # odd counts: the median is a measured step
                raise ValueError(f"SweepGrid.{name} = {v}: expected an odd count >= 1")
        if len(set(self.decode_batches)) < 2:  # the decode power fit needs a batch slope (calibrate/fit.py)
            raise ValueError(f"SweepGrid.decode_batches = {self.decode_batches}: expected at least 2 batch sizes")


# CPU rows for bigger models stay small: one fp32 thread does ~30 GFLOP/s, so a 135M-parameter
# prefill costs ~10 ms per token.
_CPU_SMALL = SweepGrid(prompt_lens=(16, 32, 64, 128, 256), prefill_batches=(1, 2, 4),
                       decode_batches=(1, 2, 4, 8, 16), context_lens=(64, 256, 512, 1024, 2048),
                       repeats=1, rounds=3, warmup=1)
_CPU_LARGE = SweepGrid(prompt_lens=(16, 64, 128, 256), prefill_batches=(1, 2),
                       decode_batches=(1, 2, 4, 8), context_lens=(128, 512, 1024, 2048),
                       repeats=1, rounds=3, warmup=1)
_GPU = SweepGrid(prompt_lens=(128, 256, 512, 1024, 2048, 4096), prefill_batches=(1, 2, 4, 8),
                 decode_batches=(1, 2, 4, 8, 16, 32, 64, 128, 256),
                 context_lens=(128, 512, 1024, 2048, 4096, 8192), repeats=5, warmup=3)

# (preset, device kind) -> grid; a preset without its own row uses the ("*", kind) row.
GRIDS: dict[tuple[str, str], SweepGrid] = {
    ("tiny", "cpu"): SweepGrid(prompt_lens=(32, 64, 128, 256, 512), prefill_batches=(1, 2, 4),
                               decode_batches=(1, 2, 4, 8, 16), context_lens=(16, 128, 512, 1024, 2048),
                               repeats=1, rounds=11, warmup=2),
    ("tiny", "gpu"): SweepGrid(prompt_lens=(64, 128, 256, 512, 1024, 2048), prefill_batches=(1, 2, 4, 8),
                               decode_batches=(1, 4, 16, 64, 256), context_lens=(128, 512, 1024, 2048, 4096),
                               repeats=5, rounds=3, warmup=3),
    ("smollm2-135m", "cpu"): _CPU_SMALL,
    ("*", "cpu"): _CPU_LARGE,
    ("*", "gpu"): _GPU,
}


def default_grid(preset: str, kind: str) -> SweepGrid:
    return GRIDS.get((preset, kind)) or GRIDS[("*", kind)]


@dataclass(frozen=True, kw_only=True)
class SweepPoint:
    phase: str      # "prefill" or "decode"
    batch: int
    length: int     # prompt length (prefill) or context length (decode)
    holdout: bool = False

    @property
    def label(self) -> str:
        what = "prompt" if self.phase == "prefill" else "ctx"
        return f"{self.phase} b{self.batch} {what}{self.length}"


def step_features(phase: str, batch: int, length: int) -> dict[str, int]:
    """The four step features of the profile's latency model for one fresh prefill or decode step."""
    if phase == "prefill":
        return {"prefill_tokens": batch * length, "prefill_attn": batch * length * length,
                "decode_seqs": 0, "decode_ctx": 0}
    if phase == "decode":
        return {"prefill_tokens": 0, "prefill_attn": 0, "decode_seqs": batch, "decode_ctx": batch * length}
    raise ValueError(f"phase {phase!r}: expected 'prefill' or 'decode'")


def _phase_points(phase: str, batches: tuple[int, ...], lengths: tuple[int, ...]) -> list[SweepPoint]:
    """Grid points of one phase; every other interior point (both axes strictly inside) is held out."""
    pts, k = [], 0
    for i, length in enumerate(lengths):
        for j, b in enumerate(batches):
            interior = 0 < i < len(lengths) - 1 and 0 < j < len(batches) - 1
            hold = interior and k % 2 == 0
            k += interior
            pts.append(SweepPoint(phase=phase, batch=b, length=length, holdout=hold))
    return pts


def plan_points(grid: SweepGrid) -> list[SweepPoint]:
    return (_phase_points("prefill", grid.prefill_batches, grid.prompt_lens)
            + _phase_points("decode", grid.decode_batches, grid.context_lens))


def power_points_first(plan: list[SweepPoint], order: np.ndarray) -> list[int]:
    """``order`` with the power fit's anchors moved to the front (keeping their relative order): the
    decode point of every batch size at the shortest context and the smallest prefill point."""
    decode_ctx = min((p.length for p in plan if p.phase == "decode"), default=None)
    prefill = min((i for i, p in enumerate(plan) if p.phase == "prefill"), default=None,
                  key=lambda i: (plan[i].batch * plan[i].length, i))
    anchors = {i for i, p in enumerate(plan) if p.phase == "decode" and p.length == decode_ctx and not p.holdout}
    anchors |= {prefill} if prefill is not None else set()
    return [int(i) for i in order if i in anchors] + [int(i) for i in order if i not in anchors]


def point_bytes(model: Decoder, p: SweepPoint) -> int:
    """Rough device memory a point needs beyond the weights: its KV cache plus activations."""
    c, e = model.config, model.dtype.itemsize
    if p.phase == "decode":
        return kv_cache_bytes(c, p.batch, p.length + 1, e) + p.batch * c.vocab_size * 4
    tokens = p.batch * p.length
    act = tokens * (4 * c.hidden_size + 3 * c.intermediate_size + 2 * c.n_heads * c.head_dim) * e
    return kv_cache_bytes(c, p.batch, p.length, e) + act + p.batch * c.vocab_size * 4


# ---------------------------------------------------------------------------------- measuring

def make_step(model: Decoder, p: SweepPoint, seed: int) -> Callable[[], Any]:
    """A closure running one step of point ``p``; inputs and cache are allocated here, outside timing."""
    ids_gen = torch.Generator().manual_seed(seed)
    if p.phase == "prefill":
        ids = random_token_ids(model, p.batch, p.length, ids_gen)
        cache = new_kv_cache(model, p.batch, p.length)
        return lambda: prefill(model, ids, cache)
    kv_gen = torch.Generator(device=model.device).manual_seed(seed)
    ids = random_token_ids(model, p.batch, 1, ids_gen)
    cache = new_kv_cache(model, p.batch, p.length + 1, random_fill=True, generator=kv_gen)
    return lambda: decode_step(model, ids, cache, p.length)


def time_steps(step: Callable[[], Any], repeats: int, warmup: int, sync: Callable[[], None],
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        t0 = clock()
        step()
        sync()
        times.append(clock() - t0)
    return times


def energy_window(step: Callable[[], Any], meter: Meter, key: str, step_s: float,
                  min_window_s: float) -> tuple[Measurement, int]:
    """Run ``step`` back to back for at least ``min_window_s`` in one meter window.

    The step count aims 10 % past the minimum, so steps a little faster than the timed median
    still fill the window.
    """
    n = max(1, math.ceil(1.1 * min_window_s / max(step_s, 1e-9)))
    meter.begin_window(key)
    for _ in range(n):
        step()
    return meter.end_window(key), n


def measure_idle(meter: Meter, seconds: float, sleep: Callable[[float], None] = time.sleep) -> Measurement:
    meter.begin_window("idle")
    sleep(seconds)
    return meter.end_window("idle")


def point_record(p: SweepPoint, times: list[float], energy: Measurement | None, n_energy: int) -> dict[str, Any]:
    q25, q50, q75 = (float(v) for v in np.percentile(times, [25, 50, 75]))
    e_step = energy.energy_j / n_energy if energy is not None and energy.energy_j is not None else None
    rec: dict[str, Any] = {"phase": p.phase, "batch": p.batch,
                           ("prompt_len" if p.phase == "prefill" else "context_len"): p.length,
                           **step_features(p.phase, p.batch, p.length),
                           "time_s": q50, "time_s_p25": q25, "time_s_p75": q75, "repeats": len(times),
                           "energy_j": e_step, "power_w": energy.power_w if e_step is not None else None,
                           "holdout": p.holdout}
    if energy is not None:
        rec["energy_steps"] = n_energy
        rec["energy_note"] = energy.reason
    return rec


# ------------------------------------------------------------------------------------ sweep

@dataclass(kw_only=True)
class SweepResult:
    points: list[dict[str, Any]]
    idle: Measurement | None
    grid: SweepGrid
    planned: int
    truncated: bool = False          # stopped by the time budget
    rounds_completed: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)  # points never measured, with the reason
    wall_s: float = 0.0

    @property
    def idle_w(self) -> float | None:
        return self.idle.power_w if self.idle is not None else None

    def summary(self) -> dict[str, Any]:
        return {"grid": asdict(self.grid), "points_planned": self.planned, "points_measured": len(self.points),
                "rounds_completed": self.rounds_completed, "truncated_by_budget": self.truncated,
                "skipped": self.skipped, "sweep_wall_s": self.wall_s}


@dataclass(kw_only=True)
class _Tally:
    """What one point has collected so far, over rounds."""

    point: SweepPoint
    times: list[float] = field(default_factory=list)
    energy: Measurement | None = None
    energy_steps: int = 0
    skip_reason: str | None = None
    step: Callable[[], Any] | None = None  # kept between rounds when all points' inputs fit in memory


KEEP_INPUTS_MAX_BYTES = 2 * 2**30


def run_sweep(model: Decoder, grid: SweepGrid, *, meter: Meter, seed: int = 0, budget_s: float | None = None,
              sync: Callable[[], None] = lambda: None, progress: bool = True, mem_bytes: int | None = None,
              clock: Callable[[], float] = time.perf_counter) -> SweepResult:
    """Measure every grid point, ``grid.rounds`` times in fresh random orders, until done or over budget.

    Visiting each point in several rounds spreads its samples over the sweep, so a burst of
    background load spoils some samples of many points rather than all samples of a few. When the
    inputs of all points fit in memory together (small models) they are allocated once and kept,
    and only the first visit warms up; otherwise each visit allocates and warms up again.
    The energy window runs in the first round. ``mem_bytes``: memory free for one point beyond the
    weights; bigger points are skipped with the reason instead of running out of memory. ``clock``
    times the steps (the budget and the energy windows always use wall time).
    """
    start = time.perf_counter()
    idle = measure_idle(meter, grid.idle_s) if meter.available else None
    plan = plan_points(grid)
    tallies = [_Tally(point=p) for p in plan]
    keep_limit = min(KEEP_INPUTS_MAX_BYTES, mem_bytes // 2) if mem_bytes is not None else KEEP_INPUTS_MAX_BYTES
    keep = sum(point_bytes(model, p) for p in plan) <= keep_limit
    rng = np.random.default_rng(seed)
    truncated, rounds_completed = False, 0
    with _progress(grid.rounds * len(plan), progress) as bar:
        for rnd in range(grid.rounds):
            order = rng.permutation(len(plan))
            for i in (power_points_first(plan, order) if rnd == 0 and meter.available else order):
                if budget_s is not None and time.perf_counter() - start > budget_s:
                    truncated = True
                    break
                tally = tallies[i]
                if tally.skip_reason is None:
                    bar.set_postfix_str(tally.point.label, refresh=False)
                    _visit(model, tally, grid, meter if rnd == 0 else None, seed + int(i), sync, mem_bytes,
                           clock, keep)
                bar.update(1)
            if truncated:
                break
            rounds_completed += 1
    for t in tallies:
        t.step = None  # free the kept inputs
    points = [point_record(t.point, t.times, t.energy, t.energy_steps) for t in tallies if t.times]
    skipped = [{"point": t.point.label, "reason": t.skip_reason or "time budget"} for t in tallies if not t.times]
    return SweepResult(points=points, idle=idle, grid=grid, planned=len(plan), truncated=truncated,
                       rounds_completed=rounds_completed, skipped=skipped, wall_s=time.perf_counter() - start)


def _visit(model: Decoder, tally: _Tally, grid: SweepGrid, meter: Meter | None, seed: int,
           sync: Callable[[], None], mem_bytes: int | None, clock: Callable[[], float], keep: bool) -> None:
    """One visit: get the point's inputs, time ``grid.repeats`` steps, maybe an energy window."""
    p = tally.point
    need = point_bytes(model, p)
    if mem_bytes is not None and need > mem_bytes:
        tally.skip_reason = f"needs ~{need / 2**30:.1f} GiB, {mem_bytes / 2**30:.1f} GiB free"
        return
    try:
        fresh = tally.step is None
        step = make_step(model, p, seed) if fresh else tally.step
        times = time_steps(step, grid.repeats, grid.warmup if fresh else 0, sync, clock)
        if meter is not None and meter.available:
            tally.energy, tally.energy_steps = energy_window(step, meter, p.label, float(np.median(times)),
                                                             grid.min_energy_window_s)
    except torch.cuda.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        tally.skip_reason = "out of device memory"
        return
    tally.step = step if keep else None
    tally.times += times


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, desc="calibrate", unit="pt", leave=False)


