"""Arrival processes, each checked against its own distribution (mean and CV of the gaps)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from agentwatt.errors import InputError
from agentwatt.traces.arrivals import poisson_arrivals, trace_arrivals


def test_poisson_mean_and_cv_of_interarrivals():
    rate = 2.5
    times = np.fromiter(itertools.islice(poisson_arrivals(np.random.default_rng(3), rate), 50_000), float)
    gaps = np.diff(np.concatenate(([0.0], times)))
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)
    assert (gaps > 0).all()


def test_poisson_is_a_stream_and_deterministic():
    stream = poisson_arrivals(np.random.default_rng(5), 1.0)
    assert iter(stream) is stream and not isinstance(stream, list)
    a = list(itertools.islice(poisson_arrivals(np.random.default_rng(5), 1.0), 3000))
    b = list(itertools.islice(poisson_arrivals(np.random.default_rng(5), 1.0), 3000))
    assert a == b


def test_poisson_window():
    times = list(poisson_arrivals(np.random.default_rng(11), 4.0, start_s=100.0, end_s=1100.0))
    assert all(100.0 < t < 1100.0 for t in times)
    assert times == sorted(times)
    assert len(times) == pytest.approx(4000, rel=0.05)  # rate × duration; sd is sqrt(4000) ≈ 1.6 %
    assert list(poisson_arrivals(np.random.default_rng(1), 1.0, start_s=5.0, end_s=5.0)) == []


@pytest.mark.parametrize("rate", [0, -1.0, math.nan, math.inf])
def test_poisson_bad_rate(rate):
    with pytest.raises(InputError) as e:
        poisson_arrivals(np.random.default_rng(0), rate)  # checked at call time, before any read
    assert str(e.value) == f"poisson arrivals: rate_per_s = {rate!r}: expected a finite number > 0"


def test_poisson_bad_window():
    with pytest.raises(InputError, match=r"end_s = 1.0: expected a time >= start_s \(2.0\)"):
        poisson_arrivals(np.random.default_rng(0), 1.0, start_s=2.0, end_s=1.0)
    with pytest.raises(InputError, match=r"start_s = -1.0: expected a finite time >= 0"):
        poisson_arrivals(np.random.default_rng(0), 1.0, start_s=-1.0)


def test_trace_arrivals_passthrough():
    assert list(trace_arrivals([0.0, 1.5, 1.5, 7])) == [0.0, 1.5, 1.5, 7.0]
    stream = trace_arrivals(iter([1.0]))
    assert iter(stream) is stream


def test_trace_arrivals_errors():
    with pytest.raises(InputError) as e:
        list(trace_arrivals([0.0, 2.0, 1.0]))
    assert str(e.value) == ("arrival times: item 2 = 1.0 is earlier than item 1 (2.0): "
                            "expected times in non-decreasing order")
    with pytest.raises(InputError) as e:
        list(trace_arrivals([0.0, -1.0]))
    assert str(e.value) == "arrival times: item 1 = -1.0: expected a finite time >= 0"
