"""Wall time of one 16-point sweep serially and on a 2-worker Dask LocalCluster, and the speed-up.

    python benchmarks/sweep_speedup.py [--workers 2] [--duration-s 300]

Grid: fleet.replicas 1..4 x ReAct arrival rate 0.5..2 sessions/s, one seed per point, each run
in a fresh result store (nothing cached). Both sides are warmed up first (imports, one run), so
the numbers compare simulation throughput; the cluster's start-up is reported on its own line.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SCENARIO = """
name = "sweep speed-up benchmark"
profile = "llama-3.1-8b_a100-40gb"
[run]
seed = 1
duration_s = {duration_s}
drain_timeout_s = 600
[fleet]
replicas = 1
[[workload]]
agent = "react-hotpotqa"
rate_per_s = 1.0
"""
GRID = ["fleet.replicas=1,2,3,4", "workload.0.rate_per_s=0.5,1.0,1.5,2.0"]


def _warm(scenario: Path) -> None:
    from agentwatt.plan.runners import run_point
    run_point(str(scenario), {"run.duration_s": 5.0}, 1)


def _cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process."""
    t = os.times()
    return t.user + t.system


def _timed_sweep(scenario: Path, runner, out: Path) -> tuple[float, float, float]:
    """(sweep wall time, sum of the runs' own wall times, CPU seconds of the processes running them)."""
    from agentwatt.plan.sweep import build_grid, sweep
    cpu0 = _runner_cpu_s(runner)
    t0 = time.perf_counter()
    res = sweep(scenario, build_grid(GRID, seeds=1), out, runner, plots=False)
    wall = time.perf_counter() - t0
    assert res.runs_done_now == 16 and len(res.table) == 16
    return wall, float(res.table["wall_time_s"].sum()), _runner_cpu_s(runner) - cpu0


def _runner_cpu_s(runner) -> float:
    client = getattr(runner, "client", None)
    return _cpu_s() if client is None else sum(client.run(_cpu_s).values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration-s", type=float, default=300.0, help="simulated arrival time per run")
    args = ap.parse_args()
    from agentwatt.plan.runners import DaskRunner, SerialRunner, available_cores

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        scenario = d / "bench.toml"
        scenario.write_text(SCENARIO.format(duration_s=args.duration_s), encoding="utf-8")
        _warm(scenario)
        serial_s, serial_runs_s, serial_cpu_s = _timed_sweep(scenario, SerialRunner(), d / "serial")

        t0 = time.perf_counter()
        runner = DaskRunner(workers=args.workers)
        start_s = time.perf_counter() - t0
        try:
            runner.client.run(_warm, scenario)
            dask_s, dask_runs_s, dask_cpu_s = _timed_sweep(scenario, runner, d / "dask")
        finally:
            runner.close()

    print(f"16-point sweep (duration_s={args.duration_s:g}, 1 seed/point) on {available_cores()} core(s)")
    print(f"  serial (in-process)          {serial_s:7.1f} s   (sum of run wall times {serial_runs_s:.1f} s, "
          f"CPU {serial_cpu_s:.1f} s)")
    print(f"  dask, {args.workers} workers               {dask_s:7.1f} s   (sum of run wall times {dask_runs_s:.1f} s, "
          f"worker CPU {dask_cpu_s:.1f} s; + {start_s:.1f} s to start the cluster)")
    print(f"  speed-up                     {serial_s / dask_s:7.2f} x   "
          f"({serial_s / (dask_s + start_s):.2f} x counting the cluster start)")
    print(f"  load average (1, 5, 15 min)  {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
