"""How agentwatt's run time and memory grow with the number of agent sessions.

Run::

    python benchmarks/scale.py                      # 1k, 10k, 100k sessions (a few minutes)
    python benchmarks/scale.py --max 1000000        # adds 1M sessions on 1,000 GPUs
    python benchmarks/scale.py --sizes 1000,10000   # chosen sizes
    python benchmarks/scale.py --cprofile 10000     # where the time goes in one run (cProfile)

Each size N runs in its own subprocess: N agent sessions, a 50/50 mix of ReAct-HotpotQA and a
ShareGPT chatbot (one Poisson stream), on ``N / 1000`` replicas (one A100-40GB each, the bundled
``llama-3.1-8b_a100-40gb`` profile) at 0.5 sessions/s per replica, so arrivals span the same
2,000 simulated seconds at every size and each replica sees the same load (about 90 % of the time
busy, TTFT p99 about 0.5 s); 1M sessions is 1,000 GPUs. Engine, router and facility are the
defaults of ``sim/data/default.toml`` (prefix caching on, least-loaded routing with session
affinity, power integrated at 1 s). The parent reads each child's wall time and its own peak RSS
(``os.wait4``), and fits the growth exponent b of wall ∝ (LLM calls)^b on log-log axes.

``--cells K`` splits each size into K cells run at the same time, one process each: the cells of
``[site] cells = K`` (``sim/cells.py``: R/K replicas each, the arrival rate split by replica share,
cell c seeded from ``SeedSequence([seed, c])``), each child running one cell exactly as a Dask
worker would (``cells.run_cell``; the merge of the cells' rows is not timed). The row's wall time is the elapsed time of the whole, its RSS the *sum* of the cells'
peaks (they are resident together). With one core per cell this is how a single machine's
cores serve one large scenario; it changes the routing topology (K routers of R/K replicas
instead of one router of R), not the model inside a cell.

``--cprofile N`` runs one size under cProfile in a child and prints the functions with the
most own time (tottime) and the most cumulative time, as % of the profiled total. cProfile
inflates code that makes many small calls; ``benchmarks/profile_breakdown.py`` reads a py-spy
sampling profile instead (no overhead) and splits it by part of the simulator.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SESSIONS_PER_REPLICA = 1000
RATE_PER_REPLICA = 0.5
MIX = {"react-hotpotqa": 0.5, "chatbot-sharegpt": 0.5}


def scenario_dict(n_sessions: int, seed: int = 1, min_replicas: int = 1) -> dict:
    replicas = max(min_replicas, n_sessions // SESSIONS_PER_REPLICA)
    rate = RATE_PER_REPLICA * replicas
    return {"name": f"scale-{n_sessions}", "profile": "llama-3.1-8b_a100-40gb",
            "run": {"seed": seed, "duration_s": n_sessions / rate, "drain_timeout_s": 600, "power_resolution_s": 1.0},
            "fleet": {"replicas": replicas},
            "workload": [{"mix": dict(MIX), "rate_per_s": rate}]}


def child(n: int, out: str, seed: int, cell: tuple[int, int] | None = None) -> None:
    t0 = time.perf_counter()
    from agentwatt.sim.cells import run_cell
    from agentwatt.sim.run import results_of, run
    from agentwatt.sim.scenario import scenario_from_dict
    t_import = time.perf_counter() - t0
    if cell is None:
        res = run(scenario_from_dict(scenario_dict(n, seed), "scale"))
    else:   # cell c of the size-n site split into k cells
        d = scenario_dict(n, seed, min_replicas=cell[0])   # at least one replica per cell
        d["site"] = {"cells": cell[0]}
        res = results_of(run_cell(scenario_from_dict(d, "scale"), cell[1]))
    s = res.summary
    Path(out).write_text(json.dumps({
        "import_s": t_import, "run_wall_s": s["wall_time_s"], "sessions": s["sessions_arrived"],
        "sessions_completed": s["sessions_completed"], "calls": s["calls_submitted"], "replicas": s["replicas"],
        "sim_time_s": s["sim_time_s"], "steps": s["steps"], "step_events": s["step_events"],
        "gpu_utilization": s["gpu_utilization"], "ttft_p99_s": s["ttft_s"]["p99"],
        "session_e2e_p50_s": s["session_e2e_s"]["p50"]}))


def _start(n: int, seed: int, tmp: Path, tag: str, cell: tuple[int, int] | None = None) -> tuple[subprocess.Popen, Path]:
    out = tmp / f"scale_{n}_{tag}.json"
    extra = ["--cell", str(cell[0]), str(cell[1])] if cell else []
    p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(n), str(out), "--seed", str(seed),
                          *extra])
    return p, out


def run_size(n: int, seed: int, tmp: Path, cells: int = 1) -> dict:
    t0 = time.perf_counter()
    procs = ([_start(n, seed, tmp, f"c{c}", (cells, c)) for c in range(cells)] if cells > 1
             else [_start(n, seed, tmp, "c0")])
    rows = []
    for p, out in procs:
        _, status, ru = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"size {n}: child exited with {os.waitstatus_to_exitcode(status)}")
        r = json.loads(out.read_text())
        r.update(cpu_s=ru.ru_utime + ru.ru_stime, max_rss_mib=ru.ru_maxrss / 1024.0)
        rows.append(r)
    wall = time.perf_counter() - t0
    if cells == 1:
        r = rows[0]
        r.update(n=n, wall_s=wall, cells=1)
        return r
    total = {k: sum(r[k] for r in rows) for k in ("sessions", "sessions_completed", "calls", "replicas", "steps",
                                                   "step_events", "cpu_s", "max_rss_mib")}
    total.update(n=n, cells=cells, wall_s=wall, import_s=max(r["import_s"] for r in rows),
                 run_wall_s=max(r["run_wall_s"] for r in rows), sim_time_s=max(r["sim_time_s"] for r in rows),
                 gpu_utilization=sum(r["gpu_utilization"] * r["replicas"] for r in rows) / total["replicas"],
                 ttft_p99_s=max(r["ttft_p99_s"] for r in rows),
                 session_e2e_p50_s=float(np.median([r["session_e2e_p50_s"] for r in rows])),
                 cell_run_wall_s=[r["run_wall_s"] for r in rows], cell_rss_mib=[r["max_rss_mib"] for r in rows])
    return total


def fit_exponent(x: list[float], y: list[float]) -> float | None:
    if len(x) < 2:
        return None
    b, _ = np.polyfit(np.log(x), np.log(y), 1)
    return float(b)


def cprofile(n: int, seed: int, top: int) -> None:
    """Profile one run in this process and print the top functions (own and cumulative time)."""
    import cProfile
    import pstats
    from agentwatt.sim.run import run
    from agentwatt.sim.scenario import scenario_from_dict
    sc = scenario_from_dict(scenario_dict(n, seed), "scale")
    pr = cProfile.Profile()
    pr.enable()
    res = run(sc)
    pr.disable()
    st = pstats.Stats(pr)
    total = st.total_tt
    s = res.summary
    print(f"cProfile of one run: {s['sessions_arrived']} sessions, {s['calls_submitted']} LLM calls, "
          f"{s['replicas']} replicas, {s['step_events']} step events; {total:.1f} s profiled "
          f"(run() wall {s['wall_time_s']:.1f} s with profiler overhead)")
    rows = []
    for (file, line, fn), (cc, nc, tt, ct, _) in st.stats.items():
        rows.append((tt, ct, nc, f"{Path(file).parent.name}/{Path(file).name}:{line}({fn})" if line else fn))
    by_file: dict[str, float] = {}
    for (file, line, fn), (cc, nc, tt, ct, _) in st.stats.items():
        k = f"{Path(file).parent.name}/{Path(file).name}" if line else "(built-ins: dict/list/heapq/min/...)"
        by_file[k] = by_file.get(k, 0.0) + tt
    print("\nOwn time by source file:")
    print("| file | own s | own % |")
    print("|---|---|---|")
    for k, tt in sorted(by_file.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| `{k}` | {tt:.2f} | {tt / total:.1%} |")
    for title, key in (("own time (tottime)", 0), ("cumulative time", 1)):
        print(f"\nTop {top} by {title}:")
        print("| function | calls | own s | own % | cum s | cum % |")
        print("|---|---|---|---|---|---|")
        for tt, ct, nc, name in sorted(rows, key=lambda r: -r[key])[:top]:
            print(f"| `{name}` | {nc} | {tt:.2f} | {tt / total:.1%} | {ct:.2f} | {ct / total:.1%} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max", type=int, default=100_000, help="largest size (1k, 10k, 100k, 1M up to this)")
    ap.add_argument("--sizes", default=None, help="comma list of sizes (overrides --max)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the table here")
    ap.add_argument("--cprofile", type=int, default=None, metavar="N", help="profile one run of N sessions")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--cells", type=int, default=1, help="split each size into K cells run in parallel (default 1)")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cell", nargs=2, type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(int(a.child[0]), a.child[1], a.seed, tuple(a.cell) if a.cell else None)
        return 0
    if a.cprofile:
        cprofile(a.cprofile, a.seed, a.top)
        return 0
    sizes = ([int(x) for x in a.sizes.split(",")] if a.sizes
             else [n for n in (1_000, 10_000, 100_000, 1_000_000) if n <= a.max])
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for n in sizes:
            r = run_size(n, a.seed, Path(td), max(1, a.cells))
            rows.append(r)
            print(f"{n} sessions: {r['wall_s']:.1f} s wall, {r['max_rss_mib']:.0f} MiB", flush=True)
    print(f"load average after: {os.getloadavg()}")
    print()
    if a.cells > 1:
        print(f"each size as {a.cells} cells in parallel (run() = slowest cell; RSS = sum of the cells' peaks; "
              f"TTFT p99 = worst cell)")
    print("| sessions | replicas | LLM calls | step events | sim time | wall (process) | run() | "
          "sessions / wall s | calls / wall s | peak RSS | GPU busy | TTFT p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sessions']:,} | {r['replicas']:,} | {r['calls']:,} | {r['step_events']:,} | {r['sim_time_s']:.0f} s | "
              f"{r['wall_s']:.1f} s | {r['run_wall_s']:.1f} s | {r['sessions'] / r['run_wall_s']:,.0f} | "
              f"{r['calls'] / r['run_wall_s']:,.0f} | {r['max_rss_mib']:,.0f} MiB | {r['gpu_utilization']:.0%} | "
              f"{r['ttft_p99_s']:.2f} s |")
    b = fit_exponent([r["calls"] for r in rows], [r["run_wall_s"] for r in rows])
    m = fit_exponent([r["calls"] for r in rows], [r["max_rss_mib"] for r in rows])
    if b is not None:
        print(f"\ngrowth exponent (log-log least squares over {len(rows)} sizes): run() wall ∝ calls^{b:.2f}; "
              f"peak RSS ∝ calls^{m:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "wall_exponent": b, "rss_exponent": m}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
