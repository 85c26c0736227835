"""Issue 22 fixes: the server follows the GPU (and the summary warns past its nameplate), the
observed power series stays within idle and TDP, energy per session counts sessions consistently,
and per-day carbon/cost extrapolate the arrival window only."""
from __future__ import annotations

import numpy as np
import pytest

from agentwatt.core.profile import load_profile
from agentwatt.sim import facility as F
from agentwatt.sim.run import run
from agentwatt.sim.scenario import FacilityConfig, scenario_from_dict


def _sc(profile="llama-3.1-8b_a100-40gb", duration=60.0, facility=None, workload=None, replicas=1, drain=600.0):
    return scenario_from_dict({
        "profile": profile, "run": {"seed": 4, "duration_s": duration, "drain_timeout_s": drain},
        "fleet": {"replicas": replicas}, "facility": facility or {},
        "workload": workload or [{"agent": "chatbot-sharegpt", "rate_per_s": 1.0}]}, "test")


# ------------------------------------------------------------------ 2. server from the GPU type

@pytest.mark.parametrize("profile, server", [("llama-3.1-8b_h100", "dgx-h100"), ("llama-3.1-70b_4xh100", "dgx-h100"),
                                             ("llama-3.1-8b_a100-40gb", "dgx-a100")])
def test_unset_server_is_the_one_of_the_profiles_gpu(profile, server):
    res = run(_sc(profile=profile, duration=10.0))
    assert res.summary["provisioning"]["server"] == server and res.scenario.facility.server == server
    assert not [w for w in res.summary["warnings"] if "server" in w or "nameplate" in w]


def test_server_rows_cover_the_catalog_gpus_with_matching_tdp():
    from agentwatt.core.gpus import GPUS
    for key, server in F.GPU_SERVERS.items():
        assert F.SERVER_SPECS[server].gpu_tdp_w == GPUS[key].tdp_w


def test_a_set_server_of_other_gpus_is_kept_with_a_warning():
    s = run(_sc(profile="llama-3.1-8b_h100", duration=10.0, facility={"server": "dgx-a100"})).summary
    assert s["provisioning"]["server"] == "dgx-a100"
    assert any("400 W GPUs" in w and "700 W" in w for w in s["warnings"])


def _fleet(server_w: np.ndarray, spec: F.ServerSpec) -> F.FleetPower:
    n = server_w.shape[1]
    z = np.zeros(n)
    return F.FleetPower(time_s=np.arange(n, dtype=float), width_s=np.ones(n), gpu_w=server_w.sum(0), host_w=z,
                        network_w=z, pue=np.ones(n), server_it_w=server_w, rack_it_w=server_w.sum(0, keepdims=True),
                        gpus=spec.gpus * server_w.shape[0], busy_s=z, idle_tool_s=z, idle_empty_s=z, capped_s=z)


def test_p95_over_the_server_nameplate_is_warned():
    spec = F.SERVER_SPECS["dgx-a100"]
    fac = FacilityConfig(server="dgx-a100")
    calm = _fleet(np.full((2, 100), 0.8 * spec.nameplate_w), spec)
    assert F.nameplate_warnings(calm, fac, 1.0) == []
    hot = np.full((2, 100), 0.8 * spec.nameplate_w)
    hot[1] = 1.2 * spec.nameplate_w          # one server 20 % over: the fleet P95 stays under its total
    ws = F.nameplate_warnings(_fleet(hot, spec), fac, 1.0)
    assert len(ws) == 1 and "server 1" in ws[0] and "120%" in ws[0]
    ws = F.nameplate_warnings(_fleet(np.full((2, 100), 1.1 * spec.nameplate_w), spec), fac, 1.0)
    assert len(ws) == 2 and "110%" in ws[1]


def test_simulate_prints_the_warnings():
    from agentwatt.cli.main import format_summary
    s = run(_sc(profile="llama-3.1-8b_h100", duration=10.0, facility={"server": "dgx-a100"})).summary
    s["wall_time_s"] = 0.0
    assert any(line.startswith("warning: [facility] server = 'dgx-a100'") for line in format_summary(s).splitlines())


# ------------------------------------------------------------------ 3. observed series bounds

def test_observed_series_stays_between_idle_and_tdp():
    prof = load_profile("llama-3.1-8b_a100-40gb")
    res = run(_sc(facility={"gpu_noise_frac": 1.0, "gpu_noise_corr_s": 0.5}, replicas=2,
                  workload=[{"agent": "chatbot-sharegpt", "rate_per_s": 3.0}]))
    obs, model = res.power["gpu_power_observed_w"].to_numpy(), res.power["gpu_power_w"].to_numpy()
    lo, hi = F.gpu_power_bounds(prof, 2)
    assert lo == 2 * min(prof.power.idle_w, prof.power.parked_w) and hi == 2 * prof.power.max_w
    assert obs.min() >= lo - 1e-9 and obs.max() <= hi + 1e-9
    assert (obs != model).any()


def test_observed_series_bounds_with_a_meter_window():
    fac = FacilityConfig(gpu_noise_frac=1.0, gpu_noise_corr_s=10.0, meter_window_s=1.0)
    x = np.r_[np.full(200, 800.0), np.full(200, 100.0)]
    out = F.observed_gpu_power(x, 0.25, fac, seed=1, bounds_w=(100.0, 800.0))
    assert out.min() >= 100.0 and out.max() <= 800.0
    unbounded = F.observed_gpu_power(x, 0.25, fac, seed=1)
    assert unbounded.max() > 800.0   # the noise alone would cross TDP


# ------------------------------------------------------------------ 4. energy per session

LATS = [{"agent": "lats-hotpotqa", "rate_per_s": 0.05}]


def _window_check(res):
    s, p, ses = res.summary, res.power, res.sessions
    win = s["steady_state_window"]
    assert win["end_s"] == min(s["arrivals_end_s"], s["sim_time_s"])     # never into the drain
    assert 0 < win["start_s"] <= win["end_s"] / 2
    fin = ses[ses["status"] == "finished"]
    n = int(((fin["finish_s"] >= win["start_s"]) & (fin["finish_s"] <= win["end_s"])).sum())
    t = p["time_s"].to_numpy()
    width = np.minimum(s["power_resolution_s"], s["sim_time_s"] - t)
    inside = np.clip(np.minimum(t + width, win["end_s"]) - np.maximum(t, win["start_s"]), 0, None)
    gpu_j = float(np.sum(p["gpu_power_w"].to_numpy() * inside))
    fac_j = float(np.sum(p["facility_power_w"].to_numpy() * inside))
    assert win["sessions"] == n
    return s, n, gpu_j, fac_j


def test_fleet_energy_per_session_is_window_energy_over_window_sessions():
    res = run(_sc(duration=900.0, workload=LATS))
    s, n, gpu_j, fac_j = _window_check(res)
    assert n >= 10 and s["sim_time_s"] > s["arrivals_end_s"]
    assert s["gpu_energy_per_session_with_idle_j"] == pytest.approx(gpu_j / n, rel=1e-6)
    assert s["facility_energy_per_session_j"] == pytest.approx(fac_j / n, rel=1e-6)
    # fleet energy per session holds the session's own energy plus a share of the idle fleet
    assert s["gpu_energy_per_session_with_idle_j"] == pytest.approx(s["gpu_energy_per_session_j"], rel=0.3)


def test_short_run_with_sessions_in_flight_is_not_charged_to_the_few_finished():
    # LATS with the odds it had before the width model (traces/lats.py), whose quick successes finish a
    # few sessions inside the 65 s run while most are still in flight
    old_odds = {"child_success_prob": 0.055, "sample_diversity": 0.5, "terminal_prob": 0.08, "max_iterations": 32,
                "max_reflections": 100_000}
    wl = [{"agent": "lats-hotpotqa", "rate_per_s": 0.2, "knobs": old_odds}]
    s = run(_sc(duration=60.0, workload=wl, replicas=2, drain=5.0)).summary
    assert s["sessions_in_flight"] > s["sessions_completed"] / 2
    long = run(_sc(duration=900.0, workload=wl, replicas=2)).summary["gpu_energy_per_session_with_idle_j"]
    old = s["gpu_energy_j"] / s["sessions_completed"]   # all energy, sessions in flight's too, over finished ones
    assert old / long > 1.5
    assert s["gpu_energy_per_session_with_idle_j"] is None and s["facility_energy_per_session_j"] is None
    assert any("steady-state window" in w for w in s["warnings"])
    # what is reported stays the finished sessions' own energy
    assert s["gpu_energy_per_session_j"] < long


# ------------------------------------------------------------------ carbon and cost per day

def test_per_day_carbon_and_cost_extrapolate_the_arrival_window_only():
    res = run(_sc(duration=120.0, facility={"carbon_g_per_kwh": 400.0, "price_usd_per_kwh": 0.1}, workload=LATS))
    s, p = res.summary, res.power
    assert s["sim_time_s"] > s["arrivals_end_s"] == 120.0       # a drain happened
    t = p["time_s"].to_numpy()
    width = np.minimum(s["power_resolution_s"], s["sim_time_s"] - t)
    inside = np.clip(np.minimum(t + width, 120.0) - t, 0, None)
    kwh_per_day = float(np.sum(p["facility_power_w"].to_numpy() * inside)) / 3.6e6 * 86400 / 120.0
    cc = s["carbon_cost"]
    assert cc["per_day"]["carbon_g"] == pytest.approx(400.0 * kwh_per_day, rel=1e-6)
    assert cc["per_day"]["energy_cost_usd"] == pytest.approx(0.1 * kwh_per_day, rel=1e-6)
    assert cc["carbon_g"] == pytest.approx(400.0 * s["facility_energy_j"] / 3.6e6, rel=1e-6)   # the whole run
