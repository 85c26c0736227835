"""A 10,000-GPU site for a day of diurnal agent traffic, as cells: the cost of a cell, and a projection.

    python benchmarks/site.py                          # measure 4 cell runs (a few minutes), project
    python benchmarks/site.py --gpus 100000 --workers 64 --cells 500

The site: ``--gpus`` A100-40GB replicas (bundled ``llama-3.1-8b_a100-40gb``, TP 1) serving the
``scale.py`` agent mix (half ReAct-HotpotQA, half ShareGPT chatbot) with diurnal arrivals (the
bundled ServeGen hourly curve, ``traces/arrivals.py``), at a daily mean of 0.5 / 1.456 sessions/s
per replica, so that the busiest hour (20:00, 1.456 × the mean) carries ``scale.py``'s load of 0.5
sessions/s per replica (GPU busy 90-99 %). ``[site] cells = K`` splits it into K cells of
``gpus / K`` replicas (``sim/cells.py``).

Measured here: one cell (``cell_scenario`` of the site, exactly what a Dask worker runs) for a
window of the day, in a fresh child process each, reading its CPU time and peak RSS: the busiest
hour and the quietest (05:00) at the chosen cell size, the busiest hour over half the window
(duration scaling), and a half-size cell (cell-size scaling). Projected: CPU seconds per LLM call
(the mean of the busiest and quietest hours) × the site's LLM calls per day = CPU for the day;
cells are independent, so on N workers the day takes ceil(K / N) × the CPU of one cell-day
(plus the client's merge, not measured here).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEAK_OVER_MEAN = 1.456       # max / mean of traces/arrivals.py SERVEGEN_M_SMALL_HOURLY (hour 20)
BUSY_HOUR, QUIET_HOUR = 20, 5
PEAK_RATE_PER_REPLICA = 0.5  # scale.py's load per replica (GPU busy 90-99 %)


def site_dict(gpus: int, cells: int, start_hour: float, window_s: float, seed: int = 1) -> dict:
    mean = PEAK_RATE_PER_REPLICA / PEAK_OVER_MEAN
    return {"name": f"site-{gpus}", "profile": "llama-3.1-8b_a100-40gb",
            "run": {"seed": seed, "duration_s": window_s, "drain_timeout_s": 600, "power_resolution_s": 60.0},
            "fleet": {"replicas": gpus}, "site": {"cells": cells},
            "workload": [{"mix": {"react-hotpotqa": 0.5, "chatbot-sharegpt": 0.5}, "arrival": "diurnal",
                          "rate_per_s": mean * gpus, "arrival_params": {"start_hour": start_hour}}]}


def child(spec: str, out: str) -> None:
    from agentwatt.sim.cells import run_cell
    from agentwatt.sim.scenario import scenario_from_dict
    a = json.loads(spec)
    sc = scenario_from_dict(site_dict(a["gpus"], a["cells"], a["hour"], a["window_s"]), "site")
    c0 = time.process_time()
    p = run_cell(sc, 0)
    Path(out).write_text(json.dumps({"cpu_s": time.process_time() - c0, "wall_s": p.wall_s,
                                     "sessions": p.counts.sessions_arrived, "calls": p.counts.calls_submitted,
                                     "replicas": len(p.replicas), "sim_time_s": p.t_end,
                                     "busy": float(p.replicas["busy_s"].sum() / (len(p.replicas) * p.t_end))}))


def measure(spec: dict, td: Path) -> dict:
    out = td / "o.json"
    p = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec), str(out)])
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{spec}: child exited with {os.waitstatus_to_exitcode(status)}")
    r = json.loads(out.read_text())
    r.update(spec, rss_mib=ru.ru_maxrss / 1024)
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpus", type=int, default=10_000)
    ap.add_argument("--cells", type=int, default=100)
    ap.add_argument("--window-s", type=float, default=600.0, help="simulated arrival window per measurement")
    ap.add_argument("--workers", default="1,16,100", help="worker counts to project for")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(*a.child)
        return 0
    g, k, w = a.gpus, a.cells, a.window_s
    specs = [dict(gpus=g, cells=k, hour=BUSY_HOUR, window_s=w), dict(gpus=g, cells=k, hour=QUIET_HOUR, window_s=w),
             dict(gpus=g, cells=k, hour=BUSY_HOUR, window_s=w / 2), dict(gpus=g, cells=2 * k, hour=BUSY_HOUR, window_s=w)]
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for s in specs:
            rows.append(measure(s, Path(td)))
            r = rows[-1]
            print(f"cell of {r['replicas']} replicas, hour {r['hour']}, {r['window_s']:.0f} s: {r['calls']:,} calls, "
                  f"{r['cpu_s']:.1f} s CPU, {r['rss_mib']:.0f} MiB", flush=True)
    print(f"load average after: {os.getloadavg()}\n")
    print("| cell | hour | arrival window | sessions | LLM calls | GPU busy | CPU | CPU per 1k calls | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['replicas']} replicas (1/{r['cells']} of {g:,}) | {r['hour']}:00 | {r['window_s']:.0f} s "
              f"(ran {r['sim_time_s']:.0f} s) | {r['sessions']:,} | {r['calls']:,} | {r['busy']:.0%} | "
              f"{r['cpu_s']:.1f} s | {1000 * r['cpu_s'] / r['calls']:.2f} s | {r['rss_mib']:,.0f} MiB |")
    busy, quiet = rows[0], rows[1]
    per_call = (busy["cpu_s"] / busy["calls"] + quiet["cpu_s"] / quiet["calls"]) / 2
    calls_per_session = (busy["calls"] + quiet["calls"]) / (busy["sessions"] + quiet["sessions"])
    mean_rate = PEAK_RATE_PER_REPLICA / PEAK_OVER_MEAN * g
    calls_day = mean_rate * 86400 * calls_per_session
    cpu_day = per_call * calls_day
    cell_day = cpu_day / k
    print(f"\nsite-day: {g:,} GPUs, {mean_rate * 86400:,.0f} sessions ({mean_rate:,.0f}/s on average), "
          f"{calls_per_session:.2f} LLM calls per session = {calls_day:,.0f} calls; "
          f"{per_call * 1e3:.3f} ms CPU per call (mean of {BUSY_HOUR}:00 and {QUIET_HOUR}:00) "
          f"= {cpu_day / 3600:,.0f} CPU-hours; one cell-day ({g // k} replicas) = {cell_day / 3600:,.1f} CPU-hours")
    print("| workers | cells per worker | projected wall for the day |")
    print("|---|---|---|")
    for n in (int(x) for x in a.workers.split(",")):
        print(f"| {n} | {math.ceil(k / n)} | {math.ceil(k / n) * cell_day / 3600:,.1f} h |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
