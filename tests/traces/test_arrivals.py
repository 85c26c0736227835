"""Arrival processes, each checked against its own distribution (mean and CV of the gaps)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from agentwatt.core.errors import InputError
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


# --- diurnal ------------------------------------------------------------------------------------

from agentwatt.traces.arrivals import (ARRIVALS, SERVEGEN_M_SMALL_HOURLY, diurnal_arrivals,  # noqa: E402
                                       make_arrivals, mmpp_arrivals, mmpp_stationary_rate)

DAY = 86400.0


def test_builtin_curve_is_normalised_and_labelled():
    assert len(SERVEGEN_M_SMALL_HOURLY) == 24
    assert np.mean(SERVEGEN_M_SMALL_HOURLY) == pytest.approx(1.0, abs=1e-3)
    assert min(SERVEGEN_M_SMALL_HOURLY) == pytest.approx(0.66) and max(SERVEGEN_M_SMALL_HOURLY) == pytest.approx(1.456)


def test_diurnal_rate_follows_the_curve():
    """Count arrivals per clock hour over 20 days: each hour's rate is mean × m[h] / mean(m)."""
    hourly = [1.0] * 12 + [3.0] * 12  # mean 2: hours 0-11 at rate/2, hours 12-23 at 1.5 × rate
    rate = 0.1
    t = np.fromiter(diurnal_arrivals(np.random.default_rng(4), rate, hourly, 0.0, 20 * DAY), float)
    assert len(t) / (20 * DAY) == pytest.approx(rate, rel=0.02)
    counts = np.bincount(((t % DAY) // 3600).astype(int), minlength=24) / (20 * 3600)
    assert counts[:12].mean() == pytest.approx(0.05, rel=0.03)
    assert counts[12:].mean() == pytest.approx(0.15, rel=0.03)
    # the built-in example: hour-by-hour rates track the curve within Poisson noise
    t = np.fromiter(make_arrivals("diurnal", np.random.default_rng(5), {"rate_per_s": 0.3}, 0.0, 10 * DAY), float)
    per_hour = np.bincount(((t % DAY) // 3600).astype(int), minlength=24) / (10 * 3600 * 0.3)
    assert per_hour == pytest.approx(np.array(SERVEGEN_M_SMALL_HOURLY) / np.mean(SERVEGEN_M_SMALL_HOURLY), rel=0.06)


def test_diurnal_start_hour_shifts_the_clock():
    hourly = [0.0] * 23 + [1.0]  # only clock hour 23 has arrivals
    t = np.fromiter(diurnal_arrivals(np.random.default_rng(1), 1 / 24, hourly, 0.0, 2 * DAY, start_hour=22.0), float)
    assert len(t) > 0 and ((t % DAY >= 3600) & (t % DAY < 7200)).all()  # t in [1 h, 2 h) of each day = clock 23:00


def test_diurnal_is_a_stream_within_its_window():
    stream = diurnal_arrivals(np.random.default_rng(2), 1.0, start_s=100.0, end_s=200.0)
    assert iter(stream) is stream
    times = list(stream)
    assert all(100.0 < x < 200.0 for x in times) and times == sorted(times)


# --- MMPP ---------------------------------------------------------------------------------------

def test_mmpp_mean_rate_and_burstiness():
    rates, sojourn = (0.2, 5.0), (300.0, 30.0)
    t = np.fromiter(mmpp_arrivals(np.random.default_rng(8), rates, sojourn, 0.0, 300_000.0), float)
    gaps = np.diff(t)
    assert len(t) / 300_000.0 == pytest.approx(mmpp_stationary_rate(rates, sojourn), rel=0.05)  # (60 + 150) / 330
    assert gaps.std() / gaps.mean() > 1.5  # bursts: CV well above Poisson's 1


def test_mmpp_equal_rates_is_poisson():
    t = np.fromiter(mmpp_arrivals(np.random.default_rng(9), (2.0, 2.0), (10.0, 10.0), 0.0, 20_000.0), float)
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(0.5, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)


def test_mmpp_rate_per_s_rescales_to_the_mean():
    p = {"rates_per_s": [1.0, 10.0], "mean_sojourn_s": [100.0, 10.0], "rate_per_s": 3.0}
    t = np.fromiter(make_arrivals("mmpp", np.random.default_rng(3), p, 0.0, 50_000.0), float)
    assert len(t) / 50_000.0 == pytest.approx(3.0, rel=0.05)


# --- make_arrivals ------------------------------------------------------------------------------

def test_make_arrivals_kinds():
    assert set(ARRIVALS) == {"poisson", "trace", "diurnal", "mmpp"}
    a = list(itertools.islice(make_arrivals("poisson", np.random.default_rng(5), {"rate_per_s": 1.0}), 100))
    b = list(itertools.islice(poisson_arrivals(np.random.default_rng(5), 1.0), 100))
    assert a == b
    assert list(make_arrivals("trace", np.random.default_rng(0), {"times": [0.0, 1.0, 5.0]}, 0.5, 4.0)) == [1.0]


@pytest.mark.parametrize("kind, params, message", [
    ("burst", {}, "arrivals 'burst': unknown kind: expected one of diurnal, mmpp, poisson, trace"),
    ("poisson", {}, "arrivals poisson: rate_per_s missing: expected a finite number > 0 (sessions per second)"),
    ("poisson", {"rate_per_s": 1, "rate": 2}, "arrivals poisson: unknown param 'rate': expected rate_per_s"),
    ("poisson", {"rate_per_s": -1}, "poisson arrivals: rate_per_s = -1: expected a finite number > 0"),
    ("diurnal", {"rate_per_s": 1, "hourly": [1] * 23},
     "diurnal arrivals: hourly = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]: "
     "expected 24 multipliers, one per hour"),
    ("diurnal", {"rate_per_s": 1, "hourly": [0] * 24},
     "diurnal arrivals: hourly = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]: "
     "expected 24 finite multipliers >= 0, not all 0"),
    ("diurnal", {"rate_per_s": 1, "curve": "azure"},
     "diurnal arrivals: curve = 'azure': expected one of servegen-m-small or hourly = [24 multipliers]"),
    ("diurnal", {"rate_per_s": 1, "start_hour": 24}, "diurnal arrivals: start_hour = 24: expected an hour in [0, 24)"),
    ("diurnal", {"rate_per_s": 1, "shape": 2},
     "arrivals diurnal: unknown param 'shape': expected rate_per_s, hourly, curve, start_hour"),
    ("mmpp", {"rates_per_s": [1.0], "mean_sojourn_s": [1, 1]},
     "mmpp arrivals: rates_per_s = [1.0]: expected two numbers [calm, burst]"),
    ("mmpp", {"rates_per_s": [0, 0], "mean_sojourn_s": [1, 1]},
     "mmpp arrivals: rates_per_s = [0, 0]: expected two finite rates >= 0, not both 0"),
    ("mmpp", {"rates_per_s": [1, 2], "mean_sojourn_s": [0, 1]},
     "mmpp arrivals: mean_sojourn_s = [0, 1]: expected two finite times > 0"),
    ("mmpp", {"rates_per_s": [1, 2]},
     "arrivals mmpp: mean_sojourn_s missing: expected two mean state durations in seconds [calm, burst]"),
    ("trace", {"times": "0,1"}, "trace arrivals: times = '0,1': expected a sequence of times in seconds"),
])
def test_make_arrivals_errors(kind, params, message):
    with pytest.raises(InputError) as e:
        make_arrivals(kind, np.random.default_rng(0), params, 0.0, 10.0)  # checked when made, before any read
    assert str(e.value) == message
