"""``power compare`` on two different series, checked against hand-computed errors (issue #18:
only a series compared with itself was tested)."""
import numpy as np
import pytest

from agentwatt.validate.powercompare import compare


def test_energy_percentile_and_ks_errors_of_a_scaled_shifted_series():
    t = np.arange(600.0)
    measured = 200.0 + 100.0 * (t % 60 < 30)          # 300 W for 30 s, 200 W for 30 s, repeated
    simulated = 1.1 * measured                         # 10 % high everywhere
    r = compare(t, measured, t, simulated)
    n = r["seconds_compared"]
    assert n == 599                                    # whole seconds from the first sample to the last
    assert r["energy_measured_j"] == pytest.approx(measured[:n].sum())
    assert r["energy_error_pct"] == pytest.approx(10.0)
    assert r["p95_error_pct"] == pytest.approx(10.0) and r["p99_error_pct"] == pytest.approx(10.0)
    assert r["acf_r2"] == pytest.approx(1.0)           # same shape: the ACF ignores scale
    assert r["ks_distance"] == pytest.approx(np.mean(measured[:n] == 300.0))   # the 300 W share lies in [300, 330)
    flat = np.full_like(measured, measured[:n].mean())
    low = compare(t, measured, t, flat)
    assert low["energy_error_pct"] == pytest.approx(0.0, abs=1e-9)   # right energy, wrong shape
    assert low["p95_error_pct"] == pytest.approx(100.0 * (flat[0] - 300) / 300)
    assert low["acf_r2"] < 0.5 and low["ks_distance"] == pytest.approx(np.mean(measured[:n] == 300.0))


def test_only_the_overlap_is_compared():
    t = np.arange(100.0)
    r = compare(t, np.full(100, 100.0), t + 50.0, np.full(100, 150.0))
    assert r["seconds_compared"] == 49 and r["energy_error_pct"] == pytest.approx(50.0)
