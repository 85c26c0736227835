"""Memory: does a long trace stream through the loader and the simulator in bounded memory?

    python benchmarks/memory.py                                   # 1 M-line trace, simulate 100 k rows
    python benchmarks/memory.py --lines 1000000 --simulate 100000,300000,1000000
    python benchmarks/memory.py --lines 200000 --simulate 0 --tracemalloc 20000,60000

Writes an Azure-2023-format trace of ``--lines`` rows (arrival times and lengths drawn like the
conversation trace: Poisson at 5.5 req/s, lognormal lengths around 1,020 prompt / 130 output
tokens), then, each in a child process of its own (peak RSS = the child's own ``VmHWM``; not
``wait4``/``getrusage``, whose maximum includes the parent's RSS at the fork):

1. **load**: streams every row through ``load_trace("azure-2023", ...)``;
2. **simulate N** for each N of ``--simulate``: the first N rows on a fleet of ``--replicas``
   (6 keep up with 5.5 req/s), as ``agentwatt simulate`` would, with the ``run()`` API. The child
   also reads its RSS when the simulation has ended and the result tables are about to be built
   (``Recorder.calls_frame`` is wrapped), and the size of what ``run()`` returns;
3. **tracemalloc** at two sizes (``--tracemalloc A,B``): the Python allocations still live when the
   simulation ends, by file and line, and how much each grew from A to B rows. Per-request objects
   retained after completion would show up here as growth (Arrow buffers of the result tables are
   not Python allocations and do not).

It prints one row per child: peak RSS, RSS at the end of the simulation, the result tables' size,
and bytes per request of the growth between sizes.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RATE_PER_S = 5.5


def write_trace(path: Path, n: int, seed: int = 0, chunk: int = 200_000) -> None:
    """An Azure-2023 CSV of ``n`` rows, written in chunks (the writer holds one chunk at a time)."""
    rng = np.random.default_rng(seed)
    base = np.datetime64("2023-11-16T18:15:46.680590", "us")
    t = 0.0
    with open(path, "w", encoding="utf-8") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            gaps = rng.exponential(1 / RATE_PER_S, m)
            times = t + np.cumsum(gaps)
            t = float(times[-1])
            inp = np.clip(rng.lognormal(np.log(1020), 0.8, m), 1, 4000).astype(int)
            out = np.clip(rng.lognormal(np.log(130), 0.9, m), 1, 1000).astype(int)
            stamps = np.datetime_as_string(base + (times * 1e6).astype("timedelta64[us]"), unit="us")
            f.write("".join(f"{s.replace('T', ' ')}0,{a},{b}\n" for s, a, b in zip(stamps, inp, out)))


_RSS = """
def _rss_mb(field="VmRSS"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
"""

LOAD = _RSS + """
import sys, json
from agentwatt.traces.loaders import load_trace
base = _rss_mb()
n = 0
for s in load_trace("azure-2023", sys.argv[1]):
    n += 1
print(json.dumps({"rows": n, "base_mb": base, "peak_mb": _rss_mb("VmHWM")}))
"""

SIM = _RSS + """
import json, sys, time, tracemalloc
from agentwatt.sim import metrics
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict
path, n, replicas, trace_top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sc = scenario_from_dict({"name": "memory", "run": {"duration_s": 1e9, "drain_timeout_s": 3600},
                         "fleet": {"replicas": replicas}, "engine": {"prefix_caching": False},
                         "workload": [{"trace": path, "format": "azure-2023", "limit": n}]}, "memory")
out = {"base_mb": _rss_mb()}
original = metrics.Recorder.calls_frame

def calls_frame(self):
    # the simulation has ended (invariants checked); the result tables are about to be built
    if "sim_end_rss_mb" not in out:
        out["sim_end_rss_mb"] = _rss_mb()
        out["sim_end_hwm_mb"] = _rss_mb("VmHWM")
        out["recorded_arrow_mb"] = sum(b.nbytes for t in (self._calls, self._sessions) for b in t.batches) / 2**20
        if trace_top:
            snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            out["traced_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
            out["top"] = [[str(s.traceback[0]), s.size, s.count] for s in snap.statistics("lineno")[:trace_top]]
    return original(self)

metrics.Recorder.calls_frame = calls_frame
if trace_top:
    tracemalloc.start(1)
else:  # sample RSS every 20 ms; at each new maximum note where the main thread is (agentwatt frames)
    import os, threading, traceback
    import agentwatt
    root = os.path.dirname(os.path.dirname(os.path.abspath(agentwatt.__file__))) + os.sep  # the checkout
    main_id, done = threading.get_ident(), threading.Event()
    def sampler():
        best = 0.0
        while not done.wait(0.02):
            rss = _rss_mb()
            if rss > best:
                best = rss
                stack = traceback.extract_stack(sys._current_frames()[main_id])
                out["peak_at"] = [f"{f.filename.removeprefix(root)}:{f.lineno} {f.name}" for f in stack
                                  if "/site-packages/" not in f.filename and "<string>" not in f.filename][-3:]
    threading.Thread(target=sampler, daemon=True).start()
t = time.perf_counter()
res = run(sc)
out["wall_s"] = time.perf_counter() - t
if not trace_top:
    done.set()
s = res.summary
out.update(calls=s["calls_completed"], sim_time_s=s["sim_time_s"], gpu_util=s["gpu_utilization"],
           steps=s["steps"], events=s["step_events"],
           tables_mb={k: float(getattr(res, k).memory_usage(deep=True).sum()) / 2**20
                      for k in ("calls", "sessions", "power", "power_levels") if getattr(res, k) is not None},
           peak_mb=_rss_mb("VmHWM"))
print(json.dumps(out))
"""


def child(code: str, *args: str) -> tuple[dict, float, float]:
    """Run ``code`` in a fresh interpreter; (its JSON output, wall s, its peak RSS in MiB)."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"child failed ({r.returncode}): {r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out, time.perf_counter() - t, out["peak_mb"]


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip() and int(x) > 0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000, help="rows in the generated trace")
    ap.add_argument("--simulate", default="100000",
                    help="rows to simulate, one child each (comma-separated, e.g. 100000,300000,1000000; 0 = none)")
    ap.add_argument("--replicas", type=int, default=6)
    ap.add_argument("--tracemalloc", default="", help="two row counts A,B: Python allocations live at the end "
                                                      "of the simulation, and their growth from A to B")
    ap.add_argument("--top", type=int, default=12, help="tracemalloc lines to print")
    ap.add_argument("--trace", default=None, help="reuse this trace file instead of writing one")
    a = ap.parse_args()
    sizes, traced = _sizes(a.simulate), _sizes(a.tracemalloc)
    if any(n > a.lines for n in sizes + traced):
        raise SystemExit(f"--simulate/--tracemalloc sizes must be <= --lines {a.lines}")
    if traced and len(traced) != 2:
        raise SystemExit("--tracemalloc: expected two sizes A,B")
    with tempfile.TemporaryDirectory() as d:
        p = Path(a.trace) if a.trace else Path(d) / "trace.csv"
        if not a.trace:
            t = time.perf_counter()
            write_trace(p, a.lines)
            print(f"trace: {a.lines:,} lines, {p.stat().st_size / 1e6:.1f} MB, "
                  f"{a.lines / RATE_PER_S / 3600:.1f} h of arrivals at {RATE_PER_S} req/s "
                  f"(written in {time.perf_counter() - t:.0f} s)")
        out, wall, rss = child(LOAD, str(p))
        print(f"load: streamed {out['rows']:,} rows in {wall:.1f} s, peak RSS {rss:.0f} MiB "
              f"(after imports {out['base_mb']:.0f} MiB)")
        rows = []
        if sizes:
            print(f"\nsimulate on {a.replicas} replicas (prefix caching off), one child per size:")
            print(f"{'rows':>10}{'wall s':>9}{'calls/s':>9}{'sim h':>7}{'busy':>6}{'base':>7}{'sim end':>9}"
                  f"{'peak':>7}{'Arrow rows':>12}{'tables':>8}   MiB except where noted")
        for n in sizes:
            out, wall, rss = child(SIM, str(p), str(n), str(a.replicas), "0")
            tables = sum(out["tables_mb"].values())
            rows.append((n, out, rss))
            print(f"{n:>10,}{out['wall_s']:>9.1f}{out['calls'] / out['wall_s']:>9,.0f}{out['sim_time_s'] / 3600:>7.1f}"
                  f"{out['gpu_util']:>6.2f}{out['base_mb']:>7.0f}{out['sim_end_rss_mb']:>9.0f}{rss:>7.0f}"
                  f"{out['recorded_arrow_mb']:>12.1f}{tables:>8.1f}", flush=True)
        if len(rows) >= 2:
            (n0, o0, r0), (n1, o1, r1) = rows[0], rows[-1]
            def per(x0: float, x1: float) -> float:
                return (x1 - x0) * 2**20 / (n1 - n0)
            t0, t1 = o0["tables_mb"], o1["tables_mb"]
            by_table = ", ".join(f"{k} {per(t0[k], v):,.0f}" for k, v in t1.items())
            print(f"\ngrowth from {n0:,} to {n1:,} rows, bytes per request: "
                  f"RSS at the end of the simulation {per(o0['sim_end_rss_mb'], o1['sim_end_rss_mb']):,.0f}, "
                  f"peak RSS {per(r0, r1):,.0f}, recorded rows (Arrow) "
                  f"{per(o0['recorded_arrow_mb'], o1['recorded_arrow_mb']):,.0f}, result tables "
                  f"{per(sum(t0.values()), sum(t1.values())):,.0f} ({by_table})")
            print(f"last size: {o1['calls']:,} calls, {o1['steps']:,} steps in {o1['events']:,} step events; "
                  f"peak RSS reached in {' < '.join(o1.get('peak_at', ['?']))}")
        if traced:
            tops = []
            for n in traced:
                out, wall, rss = child(SIM, str(p), str(n), str(a.replicas), "400")
                tops.append((n, out))
                print(f"\ntracemalloc, {n:,} rows: {out['traced_mb']:.1f} MiB of Python allocations live at the "
                      f"end of the simulation (wall {wall:.0f} s under tracemalloc)")
            (na, oa), (nb, ob) = tops
            before = {k: (size, count) for k, size, count in oa["top"]}
            growth = sorted(((size - before.get(k, (0, 0))[0], k, size, count) for k, size, count in ob["top"]),
                            reverse=True)
            print(f"largest growth from {na:,} to {nb:,} rows (bytes per added request, size and count at {nb:,}):")
            for g, k, size, count in growth[:a.top]:
                print(f"  {g / (nb - na):>8.1f} B/req  {size / 2**20:>7.2f} MiB  {count:>9,}  {k}")


if __name__ == "__main__":
    main()
