"""Memory: does a long trace stream through the loader and the simulator?

    python benchmarks/memory.py [--lines 1000000] [--simulate 200000]

Writes an Azure-2023-format trace of ``--lines`` rows (arrival times and lengths drawn like the
conversation trace: Poisson at 5.5 req/s, lognormal lengths), then in child processes
(1) streams it through the loader and (2) simulates the first ``--simulate`` rows on a fleet sized
for that rate; prints each child's peak RSS. A loader that read the file whole would grow with
``--lines``; ours stays flat. The simulator keeps only compact result columns (Arrow) per call.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_trace(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1 / 5.5, n))
    inp = np.clip(rng.lognormal(np.log(1020), 0.8, n), 1, 4000).astype(int)
    out = np.clip(rng.lognormal(np.log(130), 0.9, n), 1, 1000).astype(int)
    with open(path, "w", encoding="utf-8") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        base = 1700150400  # 2023-11-16 16:00:00 UTC, only differences matter
        import datetime as dt
        for ti, a, b in zip(t, inp, out):
            s = dt.datetime.fromtimestamp(base + ti, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
            f.write(f"{s}0,{a},{b}\n")


LOAD = """
import sys
from agentwatt.traces.loaders import load_azure_2023
n = 0
for s in load_azure_2023(sys.argv[1]):
    n += 1
print(n)
"""

SIM = """
import sys
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict
n = int(sys.argv[2])
sc = scenario_from_dict({"run": {"duration_s": 1e9, "drain_timeout_s": 3600}, "fleet": {"replicas": 6},
                         "engine": {"prefix_caching": False},
                         "workload": [{"trace": sys.argv[1], "format": "azure-2023", "limit": n}]}, "mem")
s = run(sc).summary
print(s["calls_completed"], s["wall_time_s"])
"""


def child(code: str, *args: str) -> tuple[str, float, float]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return r.stdout.strip(), wall, rss_mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--simulate", type=int, default=100_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "trace.csv"
        write_trace(p, a.lines)
        print(f"trace: {a.lines:,} lines, {p.stat().st_size / 1e6:.1f} MB")
        out, wall, rss = child(LOAD, str(p))
        print(f"loader: streamed {int(out):,} sessions in {wall:.1f} s, peak RSS {rss:.0f} MB")
        out, wall, rss2 = child(SIM, str(p), str(a.simulate))
        calls, sim_wall = out.split()
        print(f"simulate: {int(calls):,} calls on 6 replicas in {float(sim_wall):.1f} s "
              f"({int(calls) / float(sim_wall):,.0f} calls/s), peak RSS {max(rss, rss2):.0f} MB (max over children)")


if __name__ == "__main__":
    main()
