"""Facility numbers checked against hand-computed values (issue #18: untested until now): the
per-GPU cap a server or rack cap implies, hourly PUE / carbon / price, and the utility metrics
of a power series (load factor, 15-minute ramp, annual MWh)."""
from dataclasses import replace

import numpy as np
import pytest

from agentwatt.core.profile import load_profile
from agentwatt.sim.facility import carbon_and_cost, pue_at, series_metrics, server_for
from agentwatt.sim.fleet import gpu_cap_w
from agentwatt.sim.scenario import load_scenario

PROFILE = load_profile("llama-3.1-8b_a100-40gb")


def _scenario(**facility):
    sc = load_scenario(None)
    return replace(sc, facility=replace(sc.facility, **facility))


def test_server_and_rack_caps_split_into_a_per_gpu_cap():
    sc = _scenario(server_cap_w=5000.0, host_dynamic_fraction=0.25)
    spec = server_for(sc.facility, PROFILE)
    g, idle, a = spec.gpus, PROFILE.power.idle_w, 0.25
    # g·c + host(c) = C with host = host_idle + a·g·(c − idle): c = (C − host_idle + a·g·idle) / (g·(1 + a))
    c = (5000.0 - spec.host_idle_w + a * g * idle) / (g * (1 + a))
    assert gpu_cap_w(sc, PROFILE) == pytest.approx(c)
    assert g * c + spec.host_idle_w + a * g * (c - idle) == pytest.approx(5000.0)
    rack = _scenario(rack_cap_w=4 * 5000.0 + 800.0, network_w_per_rack=800.0, servers_per_rack=4,
                     host_dynamic_fraction=0.25)
    assert gpu_cap_w(rack, PROFILE) == pytest.approx(c)                  # the same cap per server
    both = _scenario(server_cap_w=5000.0, gpu_cap_w=c - 10.0, host_dynamic_fraction=0.25)
    assert gpu_cap_w(both, PROFILE) == pytest.approx(c - 10.0)           # the tightest cap binds
    assert gpu_cap_w(_scenario(), PROFILE) is None


def test_hourly_values_repeat_daily_from_midnight():
    hourly = tuple(float(h) for h in range(24))
    t = np.array([0.0, 3599.0, 3600.0, 23 * 3600.0 + 1, 24 * 3600.0, 25 * 3600.0 + 5])
    assert pue_at(hourly, t).tolist() == [0.0, 0.0, 1.0, 23.0, 0.0, 1.0]
    assert pue_at(1.3, t).tolist() == [1.3] * 6


def test_carbon_and_price_per_hour():
    fac = replace(load_scenario(None).facility, carbon_g_per_kwh=tuple([100.0] * 12 + [300.0] * 12),
                  price_usd_per_kwh=0.2)
    t = np.array([0.0, 13 * 3600.0])                   # one bin at night, one in the afternoon
    e = np.array([3.6e6, 7.2e6])                       # 1 kWh, 2 kWh
    out = carbon_and_cost(e, t, fac)
    assert out["carbon_g"] == pytest.approx(1 * 100 + 2 * 300)
    assert out["energy_cost_usd"] == pytest.approx(3 * 0.2)
    assert carbon_and_cost(e, t, replace(fac, carbon_g_per_kwh=None, price_usd_per_kwh=None)) == {}


def test_series_metrics_of_a_step_series():
    # 100 W for the first 15 minutes, 400 W for the next 15: 1-second bins
    t = np.arange(1800.0)
    w = np.where(t < 900, 100.0, 400.0)
    m = series_metrics(t, w, np.ones(1800), 1.0)
    assert m["mean_w"] == pytest.approx(250.0) and m["peak_w"] == 400.0
    assert m["load_factor"] == pytest.approx(250.0 / 400.0) and m["peak_to_average"] == pytest.approx(1.6)
    assert m["ramp_15min_w"] == pytest.approx(300.0)
    assert m["annual_mwh_at_mean"] == pytest.approx(250.0 * 8760 / 1e6)
    short = series_metrics(t[:600], w[:600], np.ones(600), 1.0)
    assert short["ramp_15min_w"] is None                # under two 15-minute windows
    coarse = series_metrics(t, w, np.ones(1800), 60.0)  # peak of 1-minute means, mean unchanged
    assert coarse["peak_w"] == 400.0 and coarse["mean_w"] == pytest.approx(250.0)
