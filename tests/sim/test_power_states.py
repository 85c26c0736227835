"""Power states: off, parked (no model, clocks down), idle with the model loaded, busy. Spare
replicas ([fleet] spare_replicas) sit in one state for the whole run; serving GPUs are busy or idle."""
import pytest

from agentwatt.core import step
from agentwatt.core.errors import InputError
from agentwatt.core.profile import load_profile
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict

BASE = {"run": {"seed": 1, "duration_s": 20.0, "drain_timeout_s": 60.0},
        "workload": [{"agent": "chatbot-sharegpt", "rate_per_s": 1.0}]}


def _run(**fleet):
    return run(scenario_from_dict({**BASE, "fleet": {"replicas": 2, **fleet}}, "states")).summary


def test_state_levels_are_ordered():
    p = load_profile("llama-3.1-8b_h100")
    off, parked, idle = (step.state_power_w(p, s) for s in ("off", "parked", "idle"))
    assert off == 0.0 < parked < idle < p.power.max_w


def test_spares_add_their_state_power_and_nothing_else():
    base = _run()
    for state in ("off", "parked", "idle"):
        s = _run(spare_replicas=6, spare_state=state)
        assert s["gpu_energy_j"] == base["gpu_energy_j"]            # serving GPUs unchanged
        gpus = 6 * 1
        w = step.state_power_w(load_profile("llama-3.1-8b_a100-40gb"), state)
        span = s["sim_time_s"]
        assert s["gpu_spare_energy_j"] == pytest.approx(gpus * w * span, rel=1e-6)
        added = s["gpu_state_seconds"][state] - base["gpu_state_seconds"][state]
        assert added == pytest.approx(gpus * span, rel=1e-6)
    facility = {st: _run(spare_replicas=6, spare_state=st)["facility_energy_j"] for st in ("off", "parked", "idle")}
    assert base["facility_energy_j"] < facility["off"] < facility["parked"] < facility["idle"]


def test_parked_needs_a_parked_level():
    from agentwatt.calibrate.splitwise_reference import llama8b_a100_40gb
    with pytest.raises(InputError, match="no parked power level"):
        step.state_power_w(llama8b_a100_40gb(), "parked")
