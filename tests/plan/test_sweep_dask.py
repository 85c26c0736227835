"""Sweeps on Dask: a worker killed mid-sweep loses no runs, and workers give the serial answer."""
import os
import signal

import pytest

from agentwatt.core.errors import InputError
from agentwatt.plan.runners import DaskRunner, SerialRunner, open_runner
from agentwatt.plan.sweep import build_grid, sweep
from tests.helpers import tiny_scenario

distributed = pytest.importorskip("distributed")


@pytest.fixture
def scenario(write_file):
    return write_file(tiny_scenario(seed=2, rate_per_s=1.0), "tiny.toml")


def _strip(table):
    return table.drop(columns=["wall_time_s"]).reset_index(drop=True)


def test_killed_worker_loses_no_runs_and_workers_match_serial(scenario, tmp_path):
    grid = build_grid(["fleet.replicas=1,2,3,4", "workload.0.rate_per_s=0.5,1"], seeds=1)
    cluster_args = dict(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0")
    with distributed.LocalCluster(**cluster_args) as cluster, distributed.Client(cluster) as client:
        killed = []

        def kill_a_busy_worker(spec, n):
            if killed:
                return
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(busy[0])

        runner = DaskRunner(scheduler=cluster.scheduler_address)
        try:
            res = sweep(scenario, grid, tmp_path / "dask", runner, plots=False, on_run=kill_a_busy_worker)
        finally:
            runner.close()
    assert killed, "no worker was busy to kill"
    assert len(res.table) == 8 and res.table["key"].is_unique
    assert len(list((tmp_path / "dask" / "points").glob("*.json"))) == 8
    serial = sweep(scenario, grid, tmp_path / "serial", SerialRunner(), plots=False)
    assert _strip(res.table).equals(_strip(serial.table))


def test_cli_sweep_on_its_own_local_cluster(scenario, tmp_path, run_cli):
    r = run_cli(["sweep", scenario, "--set", "fleet.replicas=1,2", "--seeds", "2", "--out", tmp_path / "o",
                 "--workers", "2", "--no-plots"], obj={})
    assert r.exit_code == 0, r.output
    assert "running 4 on dask local cluster, 2 worker thread(s)" in r.stdout
    assert len(list((tmp_path / "o" / "points").glob("*.json"))) == 4


def test_runner_flags():
    assert isinstance(open_runner(serial=True), SerialRunner)
    assert isinstance(open_runner(workers=1), SerialRunner)
    with pytest.raises(InputError, match=r"^--scheduler tcp://x:1: not used with --serial or --workers"):
        open_runner("tcp://x:1", workers=2)
    with pytest.raises(InputError, match=r"^--workers 0: expected an integer >= 1"):
        open_runner(workers=0)


def test_local_cluster_listens_on_loopback_only():
    runner = DaskRunner(workers=2)
    try:
        addrs = [runner.cluster.scheduler_address, *runner.client.scheduler_info()["workers"]]
        assert len(addrs) == 3 and all(a.startswith("tcp://127.0.0.1:") for a in addrs), addrs
        assert runner.cluster.dashboard_link.startswith("http://127.0.0.1:")
    finally:
        runner.close()
