"""Arrival processes: streams of session start times in seconds, never whole lists.

The paper issues queries "following a Poisson arrival distribution" (paper §1.4 [Q]), so
``poisson_arrivals`` is the default open-loop load. ``trace_arrivals`` passes recorded times
through, checking them as they go. ``diurnal_arrivals`` follows a 24-hour rate curve (a
non-homogeneous Poisson process, drawn by thinning) and ``mmpp_arrivals`` alternates between a
calm and a bursty rate (a 2-state Markov-modulated Poisson process).

``make_arrivals(kind, rng, params, start_s, end_s)`` is the one entry point a scenario uses; the
kinds and their parameters are in ``ARRIVALS``. Every check happens when the stream is made, so a
bad parameter fails before time 0 with one line naming it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from agentwatt.core.errors import InputError

DRAW_BLOCK = 1024  # assumption: interarrival gaps are drawn this many at a time (numpy is ~50× faster per
#   draw in blocks); a stream therefore consumes its rng in blocks of 1,024, which one seed still fixes.


def _finite(x: object) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


def poisson_arrivals(rng: np.random.Generator, rate_per_s: float, start_s: float = 0.0,
                     end_s: float = math.inf) -> Iterator[float]:
    """Times of a homogeneous Poisson process of ``rate_per_s`` on ``(start_s, end_s)``.

    Gaps are exponential with mean ``1 / rate_per_s``. The arguments are checked when this is
    called, not when the stream is first read.
    """
    if not (_finite(rate_per_s) and rate_per_s > 0):
        raise InputError(f"poisson arrivals: rate_per_s = {rate_per_s!r}: expected a finite number > 0")
    if not (_finite(start_s) and start_s >= 0):
        raise InputError(f"poisson arrivals: start_s = {start_s!r}: expected a finite time >= 0")
    if not (isinstance(end_s, (int, float, np.integer, np.floating)) and end_s >= start_s):
        raise InputError(f"poisson arrivals: end_s = {end_s!r}: expected a time >= start_s ({start_s!r})")
    return _poisson_stream(rng, float(rate_per_s), float(start_s), float(end_s))


def _poisson_stream(rng: np.random.Generator, rate_per_s: float, start_s: float, end_s: float) -> Iterator[float]:
    mean_gap_s = 1.0 / rate_per_s
    t = start_s
    while True:
        for gap in rng.exponential(mean_gap_s, DRAW_BLOCK):
            t += float(gap)
            if t >= end_s:
                return
            yield t


def trace_arrivals(times: Iterable[float]) -> Iterator[float]:
    """Pass recorded arrival times through, checking each is a finite time >= 0 and not earlier
    than the one before (equal times are allowed: several sessions may start together)."""
    prev = 0.0
    for i, t in enumerate(times):
        if not (_finite(t) and t >= 0):
            raise InputError(f"arrival times: item {i} = {t!r}: expected a finite time >= 0")
        if t < prev:
            raise InputError(f"arrival times: item {i} = {t!r} is earlier than item {i - 1} ({prev!r}): "
                             f"expected times in non-decreasing order")
        prev = float(t)
        yield prev


# --- diurnal (non-homogeneous Poisson by thinning) ----------------------------------------------

DAY_S = 86400.0  # seconds in a day: the rate curve repeats with this period
SERVEGEN_M_SMALL_HOURLY = (
    # [I] hour-of-day multipliers of the summed request rate of all 43 clients of Alibaba ServeGen's
    #   data/language/m-small/chunk-*-trace.csv (600 s windows over 14 days), averaged per hour and
    #   normalised to mean 1 (commit f891d1189eb32b3868dfc443800c4150548c282a, Apache-2.0; Xiang et al.,
    #   "ServeGen", arXiv 2505.09999). Hour 0 is the start of the trace's day; its clock time and time zone
    #   are not documented. An EXAMPLE shape (trough 0.66 at hour 5, peak 1.46 at hour 20), not a forecast.
    0.839, 0.714, 0.733, 0.676, 0.714, 0.660, 0.684, 0.855, 1.015, 1.054, 1.125, 1.093,
    1.060, 1.073, 1.060, 1.047, 1.091, 1.079, 1.007, 1.229, 1.456, 1.402, 1.270, 1.063,
)
DIURNAL_CURVES: dict[str, tuple[float, ...]] = {"servegen-m-small": SERVEGEN_M_SMALL_HOURLY}


def _check_rate(where: str, name: str, v: object, *, allow_zero: bool = False) -> float:
    ok = _finite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        raise InputError(f"{where}: {name} = {v!r}: expected a finite number {'>= 0' if allow_zero else '> 0'}")
    return float(v)


def _check_window(where: str, start_s: object, end_s: object) -> tuple[float, float]:
    if not (_finite(start_s) and start_s >= 0):
        raise InputError(f"{where}: start_s = {start_s!r}: expected a finite time >= 0")
    if not (isinstance(end_s, (int, float, np.integer, np.floating)) and not isinstance(end_s, bool)
            and end_s >= start_s):
        raise InputError(f"{where}: end_s = {end_s!r}: expected a time >= start_s ({start_s!r})")
    return float(start_s), float(end_s)


def hourly_rates(rate_per_s: float, hourly: Sequence[float]) -> np.ndarray:
    """Rate in each of the 24 hours: ``rate_per_s × m[h] / mean(m)`` (so ``rate_per_s`` is the daily mean)."""
    m = np.asarray(hourly, dtype=float)
    return rate_per_s * m / m.mean()


def diurnal_arrivals(rng: np.random.Generator, rate_per_s: float, hourly: Sequence[float] = SERVEGEN_M_SMALL_HOURLY,
                     start_s: float = 0.0, end_s: float = math.inf, start_hour: float = 0.0) -> Iterator[float]:
    """Times of a Poisson process whose rate is piecewise constant per hour of the day.

    The rate in clock hour h is ``rate_per_s × hourly[h] / mean(hourly)``; t = 0 is clock time
    ``start_hour`` (0–24). Drawn by thinning: candidates at the peak rate, each kept with
    probability rate(t) / peak (Lewis & Shedler), so the stream is exact, not binned.
    """
    where = "diurnal arrivals"
    rate_per_s = _check_rate(where, "rate_per_s", rate_per_s)
    if isinstance(hourly, (str, bytes)) or not hasattr(hourly, "__len__") or len(hourly) != 24:
        raise InputError(f"{where}: hourly = {hourly!r}: expected 24 multipliers, one per hour")
    if not all(_finite(x) and x >= 0 for x in hourly) or not any(x > 0 for x in hourly):
        raise InputError(f"{where}: hourly = {list(hourly)!r}: expected 24 finite multipliers >= 0, not all 0")
    if not (_finite(start_hour) and 0 <= start_hour < 24):
        raise InputError(f"{where}: start_hour = {start_hour!r}: expected an hour in [0, 24)")
    start_s, end_s = _check_window(where, start_s, end_s)
    return _diurnal_stream(rng, hourly_rates(rate_per_s, hourly), start_s, end_s, float(start_hour))


def _diurnal_stream(rng: np.random.Generator, rates: np.ndarray, start_s: float, end_s: float,
                    start_hour: float) -> Iterator[float]:
    peak = float(rates.max())
    offset_s = start_hour * 3600.0
    t = start_s
    while True:
        gaps = rng.exponential(1.0 / peak, DRAW_BLOCK)
        keep = rng.random(DRAW_BLOCK)
        for gap, u in zip(gaps, keep):
            t += float(gap)
            if t >= end_s:
                return
            hour = int(((t + offset_s) % DAY_S) // 3600.0)
            if u * peak < rates[hour]:
                yield t


# --- bursty: 2-state Markov-modulated Poisson process --------------------------------------------

def mmpp_stationary_rate(rates_per_s: Sequence[float], mean_sojourn_s: Sequence[float]) -> float:
    """Long-run mean rate: each state's rate weighted by its share of time, d_i / (d_0 + d_1)."""
    (r0, r1), (d0, d1) = rates_per_s, mean_sojourn_s
    return (r0 * d0 + r1 * d1) / (d0 + d1)


def _check_mmpp(rates_per_s: Sequence[float], mean_sojourn_s: Sequence[float]) -> None:
    where = "mmpp arrivals"
    for name, pair in (("rates_per_s", rates_per_s), ("mean_sojourn_s", mean_sojourn_s)):
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
            raise InputError(f"{where}: {name} = {pair!r}: expected two numbers [calm, burst]")
    if not all(_finite(r) and r >= 0 for r in rates_per_s) or not any(r > 0 for r in rates_per_s):
        raise InputError(f"{where}: rates_per_s = {list(rates_per_s)!r}: expected two finite rates >= 0, not both 0")
    if not all(_finite(d) and d > 0 for d in mean_sojourn_s):
        raise InputError(f"{where}: mean_sojourn_s = {list(mean_sojourn_s)!r}: expected two finite times > 0")


def mmpp_arrivals(rng: np.random.Generator, rates_per_s: Sequence[float], mean_sojourn_s: Sequence[float],
                  start_s: float = 0.0, end_s: float = math.inf) -> Iterator[float]:
    """Times of a 2-state MMPP: Poisson at ``rates_per_s[i]`` while in state i; state i lasts an
    exponential time of mean ``mean_sojourn_s[i]``, then the other state follows.

    The first state is drawn from the long-run shares, so the stream is stationary from t = start_s.
    With unequal rates the interarrival CV exceeds 1 (bursts), unlike Poisson's 1.
    """
    _check_mmpp(rates_per_s, mean_sojourn_s)
    where = "mmpp arrivals"
    start_s, end_s = _check_window(where, start_s, end_s)
    return _mmpp_stream(rng, tuple(float(r) for r in rates_per_s), tuple(float(d) for d in mean_sojourn_s),
                        start_s, end_s)


def _mmpp_stream(rng: np.random.Generator, rates: tuple[float, float], sojourn: tuple[float, float],
                 start_s: float, end_s: float) -> Iterator[float]:
    state = 0 if rng.random() < sojourn[0] / (sojourn[0] + sojourn[1]) else 1
    t = start_s
    while t < end_s:
        leave = t + float(rng.exponential(sojourn[state]))
        rate = rates[state]
        if rate > 0:
            while True:  # Poisson points of this state until it ends (memoryless: restart at the switch)
                t += float(rng.exponential(1.0 / rate))
                if t >= min(leave, end_s):
                    break
                yield t
        t = leave
        state = 1 - state


# --- one entry point -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ArrivalKind:
    """A registered arrival process: its required and optional parameters and how to start it."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    start: Callable[[np.random.Generator, dict, float, float], Iterator[float]]
    doc: str


def _diurnal_from(rng: np.random.Generator, p: dict, start_s: float, end_s: float) -> Iterator[float]:
    if "hourly" in p and "curve" in p:
        raise InputError("diurnal arrivals: hourly and curve both given: expected one of them")
    hourly = p.get("hourly")
    if hourly is None:
        curve = p.get("curve", "servegen-m-small")
        if curve not in DIURNAL_CURVES:
            raise InputError(f"diurnal arrivals: curve = {curve!r}: expected one of {', '.join(sorted(DIURNAL_CURVES))} "
                             f"or hourly = [24 multipliers]")
        hourly = DIURNAL_CURVES[curve]
    return diurnal_arrivals(rng, p["rate_per_s"], hourly, start_s, end_s, p.get("start_hour", 0.0))


def _mmpp_from(rng: np.random.Generator, p: dict, start_s: float, end_s: float) -> Iterator[float]:
    rates = p["rates_per_s"]
    if "rate_per_s" in p:  # rescale both rates so the long-run mean is rate_per_s
        mean = _check_rate("mmpp arrivals", "rate_per_s", p["rate_per_s"])
        _check_mmpp(rates, p["mean_sojourn_s"])
        k = mean / mmpp_stationary_rate(rates, p["mean_sojourn_s"])
        rates = [k * r for r in rates]
    return mmpp_arrivals(rng, rates, p["mean_sojourn_s"], start_s, end_s)


def _trace_from(rng: np.random.Generator, p: dict, start_s: float, end_s: float) -> Iterator[float]:
    _check_window("trace arrivals", start_s, end_s)
    times = p["times"]
    if isinstance(times, (str, bytes)) or not isinstance(times, Iterable):
        raise InputError(f"trace arrivals: times = {times!r}: expected a sequence of times in seconds")
    return (t for t in trace_arrivals(times) if start_s <= t < end_s)


ARRIVALS: dict[str, ArrivalKind] = {
    "poisson": ArrivalKind(("rate_per_s",), (), lambda rng, p, a, b: poisson_arrivals(rng, p["rate_per_s"], a, b),
                           "homogeneous Poisson (paper §1.4)"),
    "trace": ArrivalKind(("times",), (), _trace_from, "recorded times, checked and passed through"),
    "diurnal": ArrivalKind(("rate_per_s",), ("hourly", "curve", "start_hour"), _diurnal_from,
                           "24-hour rate curve; rate_per_s is the daily mean"),
    "mmpp": ArrivalKind(("rates_per_s", "mean_sojourn_s"), ("rate_per_s",), _mmpp_from,
                        "2-state Markov-modulated Poisson; rate_per_s (optional) rescales to that long-run mean"),
}


def make_arrivals(kind: str, rng: np.random.Generator, params: Mapping[str, Any], start_s: float = 0.0,
                  end_s: float = math.inf) -> Iterator[float]:
    """A stream of arrival times on ``(start_s, end_s)`` from the process registered as ``kind``.

    ``params`` are the process's parameters (``ARRIVALS[kind].required`` / ``.optional``); unknown or
    missing ones are errors naming the parameter and what was expected.
    """
    spec = ARRIVALS.get(kind)
    if spec is None:
        raise InputError(f"arrivals {kind!r}: unknown kind: expected one of {', '.join(sorted(ARRIVALS))}")
    if not isinstance(params, Mapping):
        raise InputError(f"arrivals {kind}: params = {params!r}: expected a table of parameters")
    allowed = spec.required + spec.optional
    unknown = sorted(k for k in params if k not in allowed)
    if unknown:
        raise InputError(f"arrivals {kind}: unknown param {', '.join(map(repr, unknown))}: "
                         f"expected {' and '.join(allowed) if len(allowed) < 3 else ', '.join(allowed)}")
    for k in spec.required:
        if k not in params:
            raise InputError(f"arrivals {kind}: {k} missing: expected {_EXPECT[k]}")
    return spec.start(rng, dict(params), start_s, end_s)


_EXPECT = {
    "rate_per_s": "a finite number > 0 (sessions per second)",
    "times": "a sequence of arrival times in seconds",
    "rates_per_s": "two rates per second [calm, burst]",
    "mean_sojourn_s": "two mean state durations in seconds [calm, burst]",
}
