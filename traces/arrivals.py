"""Arrival processes: streams of session start times in seconds, never whole lists.

The paper issues queries "following a Poisson arrival distribution" (paper §1.4 [Q]), so
``poisson_arrivals`` is the default open-loop load. ``trace_arrivals`` passes recorded times
through, checking them as they go.
"""
from __future__ import annotations

import math
from typing import Iterable, Iterator

import numpy as np

from agentwatt.errors import InputError

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
