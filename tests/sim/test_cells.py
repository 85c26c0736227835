"""``[site] cells``: the split rule, exact merging, and the same results serially and on Dask."""
import hashlib
import re

import numpy as np
import pytest

from agentwatt.core.errors import InputError
from agentwatt.sim.cells import cell_scenario, run_cells, shares
from agentwatt.sim.output import write_results
from agentwatt.sim.scenario import scenario_from_dict

SITE = {"name": "site", "profile": "llama-3.1-8b_a100-40gb",
        "run": {"seed": 5, "duration_s": 40, "drain_timeout_s": 300},
        "fleet": {"replicas": 5, "spare_replicas": 1},
        "site": {"cells": 3},
        "workload": [{"mix": {"react-hotpotqa": 0.5, "chatbot-sharegpt": 0.5}, "rate_per_s": 2.5},
                     {"agent": "chatbot-sharegpt", "arrival": "mmpp",
                      "arrival_params": {"rates_per_s": [0.5, 2.0], "mean_sojourn_s": [20, 5]}}]}
_WALL = re.compile(rb'^\s*"wall_time_s": [^\n]*\n', re.M)


def _digests(res, folder):
    out = {}
    for name, p in sorted(write_results(res, folder, plots=False).items()):
        raw = p.read_bytes()
        out[name] = hashlib.sha256(_WALL.sub(b"", raw) if p.suffix == ".json" else raw).hexdigest()
    return out


def test_split_rule_shares_replicas_rates_and_seeds():
    sc = scenario_from_dict(SITE)
    cells = [cell_scenario(sc, c) for c in range(3)]
    assert [c.fleet.replicas for c in cells] == [2, 2, 1] == shares(5, 3)
    assert [c.fleet.spare_replicas for c in cells] == [1, 0, 0]
    assert sum(c.workload[0].rate_per_s for c in cells) == pytest.approx(2.5)
    assert cells[2].workload[0].rate_per_s == pytest.approx(2.5 / 5)
    burst = [c.workload[1].arrival_params["rates_per_s"][1] for c in cells]
    assert burst == pytest.approx([0.8, 0.8, 0.4])
    assert len({c.run.seed for c in cells}) == 3 and all(c.site.cells == 1 for c in cells)


def test_merged_cells_conserve_rows_replicas_and_energy():
    sc = scenario_from_dict(SITE)
    res = run_cells(sc)
    s, cells = res.summary, res.summary["cells"]
    assert s["replicas"] == 5 and len(cells) == 3
    assert s["sessions_arrived"] == sum(c["sessions_arrived"] for c in cells) == len(res.sessions)
    assert s["calls_submitted"] == sum(c["calls_submitted"] for c in cells) == len(res.calls)
    assert res.sessions["session_id"].is_unique
    assert set(res.calls["replica"]) <= set(range(5)) and set(res.calls["cell"]) == {0, 1, 2}
    assert s["sim_time_s"] == pytest.approx(max(c["sim_time_s"] for c in cells))
    # the merged power series integrates to the replicas' energy (cells that ended early idle to the end)
    t = res.power["time_s"].to_numpy()
    width = np.diff(np.append(t, s["sim_time_s"]))
    assert float(np.sum(res.power["gpu_power_w"] * width)) == pytest.approx(
        s["gpu_energy_j"] + s["gpu_spare_energy_j"], rel=1e-9)
    early = min(cells, key=lambda c: c["sim_time_s"])
    idle_tail = s["gpu_energy_j"] - sum(c["gpu_energy_j"] for c in cells)
    assert idle_tail > 0 or early["sim_time_s"] == s["sim_time_s"]


def test_serial_and_dask_give_byte_identical_results(tmp_path):
    distributed = pytest.importorskip("distributed")
    sc = scenario_from_dict(SITE)
    serial = _digests(run_cells(sc), tmp_path / "serial")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cl, \
            distributed.Client(cl) as client:
        dask = _digests(run_cells(sc, client=client), tmp_path / "dask")
    assert serial == dask and {"summary", "calls", "sessions", "power"} <= set(serial)


def test_cli_runs_cells_serially(write_file, run_cli, tmp_path):
    body = "\n".join(["[site]", "cells = 2", "[fleet]", "replicas = 2", "[run]", "duration_s = 20",
                      "[[workload]]", 'agent = "chatbot-sharegpt"', "rate_per_s = 1.0"])
    r = run_cli(["simulate", write_file(body), "--serial", "--out", tmp_path / "o", "--no-plots"], obj={})
    assert r.exit_code == 0, r.output
    assert "2 cells on in-process (serial)" in r.stdout


@pytest.mark.parametrize("change, message", [
    ({"site": {"cells": 6}}, "[site] cells = 6: expected an integer >= 1 and <= 5"),
    ({"workload": [{"trace": "azure-conv-head2000"}]}, "replays recorded arrivals"),
    ({"workload": [{"agent": "chatbot-sharegpt", "arrival": "closed", "concurrency": 2}]},
     "expected at least one user and one session per cell"),
])
def test_unsplittable_sites_are_rejected(change, message):
    with pytest.raises(InputError, match=re.escape(message)):
        scenario_from_dict({**SITE, **change}, "s.toml")
