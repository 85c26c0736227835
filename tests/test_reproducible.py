"""Reproducibility: the same inputs and seed give byte-identical result files (wall-clock fields
aside) in this process, in other processes and on Dask workers; every result file names its seed and
the package versions that made it."""
import json
import re
import subprocess
import sys

import pytest

from agentwatt.plan.runners import DaskRunner, SerialRunner
from agentwatt.plan.sweep import build_grid, sweep

distributed = pytest.importorskip("distributed")

SCENARIO = """
name = "reproducible"
profile = "llama-3.1-8b_a100-40gb"
[run]
seed = 7
duration_s = 15
drain_timeout_s = 30
[fleet]
replicas = 1
[[workload]]
agent = "react-hotpotqa"
rate_per_s = 1.0
[[workload]]
agent = "chatbot-sharegpt"
rate_per_s = 0.5
"""

# Fields that measure the machine, not the model: the only ones allowed to differ between two runs.
WALL_CLOCK_FIELDS = ("wall_time_s",)
VERSION_KEYS = ("agentwatt", "python", "numpy", "pandas", "simpy")
_WALL_LINE = re.compile(rb'^\s*"(' + b"|".join(f.encode() for f in WALL_CLOCK_FIELDS) + rb')": [^\n]*\n', re.M)


def without_wall_clock(raw: bytes) -> bytes:
    """A result JSON file (written with indent=2, one field per line) without its wall-clock lines."""
    return _WALL_LINE.sub(b"", raw)


@pytest.fixture
def scenario(tmp_path):
    p = tmp_path / "reproducible.toml"
    p.write_text(SCENARIO, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                                  silence_logs=40) as c:
        yield c


def _assert_same_bytes(a_dir, b_dir, pattern: str) -> int:
    a = sorted(p.name for p in a_dir.glob(pattern))
    b = sorted(p.name for p in b_dir.glob(pattern))
    assert a and a == b
    for name in a:
        x, y = (a_dir / name).read_bytes(), (b_dir / name).read_bytes()
        if name.endswith(".json"):
            x, y = without_wall_clock(x), without_wall_clock(y)
        assert x == y, f"{name} differs between {a_dir} and {b_dir}"
    return len(a)


def test_sweep_point_files_identical_serial_and_on_dask_workers(scenario, tmp_path, cluster):
    grid = build_grid(["fleet.replicas=1,2", "workload.0.rate_per_s=0.5,1.5"], seeds=1)
    serial = sweep(scenario, grid, tmp_path / "serial", SerialRunner(), plots=False)
    runner = DaskRunner(scheduler=cluster.scheduler_address)
    try:
        with distributed.Client(cluster) as client, distributed.get_task_stream(client) as stream:
            dask = sweep(scenario, grid, tmp_path / "dask", runner, plots=False)
    finally:
        runner.close()
    assert serial.runs_done_now == dask.runs_done_now == 4
    assert len({t["worker"] for t in stream.data}) == 2   # the runs were spread over both worker processes
    points_s, points_d = tmp_path / "serial" / "points", tmp_path / "dask" / "points"
    assert _assert_same_bytes(points_s, points_d, "*.json") == 4
    assert _assert_same_bytes(tmp_path / "serial", tmp_path / "dask", "sweep.json") == 1
    for p in points_d.glob("*.json"):
        raw = p.read_bytes()
        assert len(_WALL_LINE.findall(raw)) == 1    # the stripped field is there, once (summary.wall_time_s)
        rec = json.loads(raw)
        assert rec["seed"] == rec["summary"]["seed"] == 7
        assert all(rec["summary"]["versions"].get(k) for k in VERSION_KEYS), rec["summary"]["versions"]
    for res in (serial, dask):  # the table of the sweep carries them per row too
        assert (res.table["seed"] == 7).all()
        assert all(res.table[f"versions.{k}"].notna().all() for k in VERSION_KEYS)
    strip = [c for c in serial.table.columns if c.split(".")[-1] in WALL_CLOCK_FIELDS]
    assert serial.table.drop(columns=strip).equals(dask.table.drop(columns=strip))


def _run_and_write(scenario_path: str, out_dir: str) -> list[str]:
    """Simulate and write every result file (no plots) in whichever process this runs in."""
    import os

    from agentwatt.sim.output import write_results
    from agentwatt.sim.run import run
    from agentwatt.sim.scenario import load_scenario
    written = write_results(run(load_scenario(scenario_path)), out_dir, plots=False)
    return [os.getpid(), sorted(p.name for p in written.values())]


def test_result_files_identical_in_this_process_and_on_a_worker(scenario, tmp_path, cluster):
    import os

    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # the worker cannot import this test module
    try:
        with distributed.Client(cluster) as client:
            pid, remote = client.submit(_run_and_write, str(scenario), str(tmp_path / "worker"), pure=False).result()
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert pid != os.getpid()
    _, here = _run_and_write(str(scenario), str(tmp_path / "here"))
    # and a fresh interpreter with another string-hash seed (set iteration order differs there)
    code = ("import sys; from agentwatt.sim.output import write_results; from agentwatt.sim.run import run; "
            "from agentwatt.sim.scenario import load_scenario; "
            "write_results(run(load_scenario(sys.argv[1])), sys.argv[2], plots=False)")
    subprocess.run([sys.executable, "-c", code, str(scenario), str(tmp_path / "child")], check=True,
                   env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert here == remote and "calls.parquet" in here and "power.parquet" in here
    assert _assert_same_bytes(tmp_path / "here", tmp_path / "worker", "*") == len(here)
    assert _assert_same_bytes(tmp_path / "here", tmp_path / "child", "*") == len(here)
    summary = json.loads((tmp_path / "here" / "summary.json").read_text(encoding="utf-8"))
    assert summary["seed"] == 7 and all(summary["versions"].get(k) for k in VERSION_KEYS)


def test_every_result_file_names_its_seed_and_versions(scenario, tmp_path):
    import pyarrow.parquet as pq
    _run_and_write(str(scenario), str(tmp_path / "out"))   # its own folder: results replace a folder whole
    for p in sorted((tmp_path / "out").glob("*.parquet")):
        meta = {k.decode(): v.decode() for k, v in (pq.read_metadata(p).metadata or {}).items()}
        assert "agentwatt" in meta, f"{p.name}: no agentwatt provenance in its metadata"
        prov = json.loads(meta["agentwatt"])
        assert prov["seed"] == 7 and all(prov["versions"].get(k) for k in VERSION_KEYS), p.name
