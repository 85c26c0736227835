"""The Python API (``import agentwatt``): the README's snippet runs as written, and each function
takes the scenario forms it promises."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

import agentwatt
from agentwatt.api import scenario_to_dict, to_toml
from agentwatt.core.errors import InputError
from agentwatt.sim.scenario import load_scenario as load_file, scenario_from_dict

ROOT = Path(__file__).resolve().parents[1]
SHORT = {"run.duration_s": 20.0, "fleet.replicas": 1}


def readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def test_readme_snippet_runs(tmp_path, monkeypatch):
    blocks = readme_python_blocks()
    assert len(blocks) == 1, "README: expected one ```python block (the API snippet)"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(blocks[0], "README.md (python block)", "exec"), namespace)
    assert (tmp_path / "results" / "summary.json").is_file()
    assert isinstance(namespace["res"], agentwatt.Results)
    assert isinstance(namespace["sw"].table, pd.DataFrame) and len(namespace["sw"].table) == 4
    assert namespace["pl"].answer is not None


def test_import_is_light():
    code = ("import sys, agentwatt; print(agentwatt.__version__); "
            "print(sorted(m for m in ('pandas', 'simpy', 'torch', 'agentwatt.sim', 'agentwatt.api') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == agentwatt.__version__ and out[1] == "[]"


def test_load_scenario_forms_and_overrides(tmp_path):
    default = agentwatt.load_scenario()
    assert default == load_file(None)
    a = agentwatt.load_scenario(overrides={"fleet.replicas": 3, "workload.1.rate_per_s": 0.5})
    b = agentwatt.load_scenario(fleet__replicas=3, workload__1__rate_per_s=0.5)
    assert a == b and a.fleet.replicas == 3 and a.workload[1].rate_per_s == 0.5
    path = tmp_path / "s.toml"
    path.write_text(to_toml(scenario_to_dict(a)), encoding="utf-8")
    assert agentwatt.load_scenario(path).fleet.replicas == 3
    from_dict = agentwatt.load_scenario({"workload": [{"agent": "chatbot-sharegpt", "rate_per_s": 1.0}]},
                                        fleet__replicas=2)
    assert from_dict.fleet.replicas == 2 and from_dict.source == "scenario dict"
    again = agentwatt.load_scenario(a, fleet__replicas=5)   # a Scenario plus overrides
    assert again.fleet.replicas == 5 and again.workload == a.workload
    with pytest.raises(InputError, match=r"\[fleet\] replicas = 0: expected an integer >= 1"):
        agentwatt.load_scenario(fleet__replicas=0)
    with pytest.raises(InputError, match="given twice"):
        agentwatt.load_scenario(overrides={"fleet.replicas": 2}, fleet__replicas=3)
    with pytest.raises(InputError, match="expected a Scenario, a dict, a TOML path or None"):
        agentwatt.load_scenario(42)


ROUND_TRIP = {
    "mix, closed loop, knobs": {
        "workload": [{"mix": {"chatbot-sharegpt": 0.7, "react-hotpotqa": 0.3},
                      "knobs": {"react-hotpotqa": {"iteration_budget": 4}}, "rate_per_s": 2.0},
                     {"agent": "lats-hotpotqa", "arrival": "closed", "concurrency": 2, "sessions": 5,
                      "think_time_s": 1.5}]},
    "traces, facility, engine": {
        "engine": {"kv_retention": "ttl", "kv_retention_ttl_s": 3.0, "kv_capacity_tokens": 50000},
        "facility": {"pue": [1.1] * 12 + [1.3] * 12, "gpu_cap_w": 300.0, "carbon_g_per_kwh": 400.0},
        "workload": [{"trace": "azure-conv-head2000", "limit": 10, "time_scale": 0.5},
                     {"trace": "claude-code-sample", "format": "claude-code", "arrival": "poisson",
                      "rate_per_s": 0.2, "repeat": True}]},
}


@pytest.mark.parametrize("case", [*ROUND_TRIP, "default", "agent_mix.toml", "react_hotpotqa_project.toml"])
def test_scenario_to_dict_round_trips_through_toml(case):
    if case == "default":
        sc = load_file(None)
    elif case.endswith(".toml"):
        sc = load_file(ROOT / "examples" / case)
    else:
        sc = scenario_from_dict(ROUND_TRIP[case], "t")
    back = scenario_from_dict(tomllib.loads(to_toml(scenario_to_dict(sc))), sc.source)
    assert back == sc


def test_run_takes_dict_path_scenario_and_seed(tmp_path):
    sc = agentwatt.load_scenario(overrides=SHORT)
    res = agentwatt.run(sc, seed=4)
    assert res.summary["seed"] == 4 and res.scenario.run.seed == 4
    text = repr(res)
    assert text.startswith(f"<Results {sc.name!r}:") and "session p99" in text and "1 GPU(s)" in text
    assert len(text) < 200
    assert res.metrics["session_e2e_s.p99"] == res.summary["session_e2e_s"]["p99"]
    same = agentwatt.run(scenario_to_dict(sc), seed=4, profile="llama-3.1-8b_a100-40gb")
    pd.testing.assert_frame_equal(res.calls, same.calls)
    written = res.write(tmp_path / "out", plots=False)
    assert json.loads(written["summary"].read_text())["seed"] == 4
    with pytest.raises(InputError, match="seed = -1"):
        agentwatt.run(sc, seed=-1)


def test_sweep_with_and_without_a_folder(tmp_path):
    sc = agentwatt.load_scenario(overrides=SHORT)
    sw = agentwatt.sweep(sc, {"fleet.replicas": [1, 2]}, seeds=2)
    assert sw.out is None and len(sw.table) == 4 and "sweep" in repr(sw).lower()
    m = sw.metric("session_e2e_s.p99")
    assert list(m["param.fleet.replicas"]) == [1, 2] and (m["n"] == 2).all()
    kept = agentwatt.sweep(sc, {"fleet.replicas": [1, 2]}, seeds=2, out=tmp_path / "sw", plots=False)
    assert (tmp_path / "sw" / "scenario.toml").is_file() and (tmp_path / "sw" / "sweep.parquet").is_file()
    same = [d[~d["metric"].str.contains("wall_time")].reset_index(drop=True) for d in (sw.summary, kept.summary)]
    pd.testing.assert_frame_equal(*same)
    with pytest.raises(InputError, match=r"grid\['fleet.replicas'\]: value \[1\]"):
        agentwatt.sweep(sc, {"fleet.replicas": [[1]]})


def test_plan_and_the_plan_subpackage_coexist(tmp_path):
    import agentwatt.plan.sweep   # the subpackage: agentwatt.plan stays the API function
    assert callable(agentwatt.plan) and agentwatt.plan.sweep is sys.modules["agentwatt.plan.sweep"]
    sc = agentwatt.load_scenario(overrides=SHORT)
    pl = agentwatt.plan(sc, slo="session_e2e_s.p99<=1000", lo=1, hi=2, seeds=2, out=tmp_path / "pl", plot=False)
    assert pl.answer == 1 and "fleet.replicas = 1" in repr(pl)
    assert (tmp_path / "pl" / "plan.json").is_file() and list(pl.table["size"]) == [1]
    none = agentwatt.plan(sc, slo=["session_e2e_s.p99<=0.001"], lo=1, hi=1, seeds=2)
    assert none.answer is None and "no fleet.replicas in 1..1" in none.reason


def test_ci_runs_the_readme_test_command_and_the_readme_installs_the_calibrate_extra():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```")[0].splitlines()
    simulate, tests = lines[0], lines[1]
    assert "pip install torch==2.13.0 && pip install '.[calibrate]' && agentwatt simulate" in simulate
    assert tests.endswith("pip install '.[calibrate,test]' && python -m pytest -q")
    assert (ROOT / ".ci" / "run").read_text(encoding="utf-8").rstrip().splitlines()[-1] == tests
