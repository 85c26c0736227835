"""``agentwatt project``: the paper's formula and the simulated fleet, checked against the runs they
come from (issue #18: only its flags were tested)."""
import math

import pytest

from agentwatt.plan.project import project, single_query_scenario
from agentwatt.sim.facility import paper_formula_power_w
from agentwatt.sim.run import run
from agentwatt.sim.scenario import load_scenario


@pytest.fixture(scope="module")
def sc():
    return load_scenario(None, {"run.duration_s": 60, "fleet.replicas": 2})


def test_project_scales_the_simulated_fleet_and_the_papers_formula(sc):
    qpd = 2e6
    r = project(sc, qpd)
    s = run(sc).summary                                   # deterministic: the same run project made
    rate = s["sessions_completed"] / s["sim_time_s"] / 2
    sm, pf = r["simulated"], r["paper_formula"]
    assert sm["sessions_per_s_per_replica"] == pytest.approx(rate)
    assert sm["replicas"] == math.ceil(qpd / 86400 / rate) and sm["gpus"] == sm["replicas"]
    scale = sm["replicas"] / 2
    assert sm["facility_avg_power_w"] == pytest.approx(s["facility_avg_power_w"] * scale)
    assert sm["gpu_avg_power_w"] == pytest.approx(s["gpu_avg_power_w"] * scale)
    alone = run(single_query_scenario(sc)).summary
    assert alone["sessions_completed"] == 30 and alone["replicas"] == 1
    wh = alone["gpu_energy_j"] / 30 / 3600
    assert pf["wh_per_query_alone"] == pytest.approx(wh)
    assert pf["power_w"] == pytest.approx(paper_formula_power_w(wh, qpd)) == pytest.approx(wh * qpd / 24)
    double = project(sc, 2 * qpd)["simulated"]
    assert double["replicas"] == math.ceil(2 * qpd / 86400 / rate)   # twice the queries: twice the fleet (rounded up)


def test_project_without_a_power_model_says_why(sc, tmp_path):
    import json
    from dataclasses import replace

    from agentwatt.core.profile import PowerModel, load_profile
    p = load_profile(sc.profile)
    d = replace(p, power=PowerModel(available=False, source="unavailable", reason="no meter")).to_dict()
    f = tmp_path / "p.json"
    f.write_text(json.dumps(d))
    r = project(replace(sc, profile=str(f)), 1e6)
    assert r == {"error": "profile has no power model (no meter)"}
