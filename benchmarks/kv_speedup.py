"""The KV block manager against an earlier revision of itself, in the same run: speed and sameness.

    python benchmarks/kv_speedup.py --replay 3000            # KV operations of a 3k-session run, replayed
    python benchmarks/kv_speedup.py                          # whole runs: 10k sessions, baseline = 3d31d8b
    python benchmarks/kv_speedup.py --sessions 100000 --repeat 1 --baseline <rev>

Whole runs: the ``scale.py`` scenario (N agent sessions on N / 1,000 A100s, prefix caching on) in
fresh child processes, alternating between this tree's ``sim/kv.py`` and the one at ``--baseline``
(read with ``git show``, loaded in the child in place of ``agentwatt.sim.kv``; everything else is
this tree). Prints each child's ``run()`` wall and CPU time, the ratio of the medians, and whether
both sides gave the same summary and the same call and session tables (SHA-256 of the frames).

``--replay N``: records every call the simulator makes on its block managers during an N-session
run (arguments copied), then replays that operation log on fresh managers of both versions in
this process, alternating, ``--repeat`` times each, and compares every return value and the final
free-queue order. The KV work alone, without the rest of the simulator, so the ratio is less
exposed to other jobs on a shared machine (the minimum of the repeats is reported).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = "3d31d8b"   # the commit before the whole-context KV updates (issue 19)


def child(n: int, kv_file: str, out: str) -> None:
    if kv_file != "-":   # swap the module in before the simulator imports it
        import importlib.util
        spec = importlib.util.spec_from_file_location("agentwatt.sim.kv", kv_file)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["agentwatt.sim.kv"] = mod
        spec.loader.exec_module(mod)
    sys.path.insert(0, str(HERE))
    from scale import scenario_dict
    from agentwatt.sim.run import run
    from agentwatt.sim.scenario import scenario_from_dict
    c0 = time.process_time()
    res = run(scenario_from_dict(scenario_dict(n), "kv_speedup"))
    cpu = time.process_time() - c0
    s = dict(res.summary)
    s.pop("wall_time_s", None)
    digest = hashlib.sha256(json.dumps(s, sort_keys=True, default=str).encode())
    for df in (res.calls, res.sessions):
        digest.update(df.to_csv(index=False).encode())
    Path(out).write_text(json.dumps({"wall_s": res.summary["wall_time_s"], "cpu_s": cpu, "digest": digest.hexdigest(),
                                     "calls": s["calls_submitted"]}))


def record(n: int) -> tuple[list, list]:
    """(managers' (num_blocks, block_size), operation log) of an n-session run of ``scale.py``'s scenario."""
    from agentwatt.sim import kv
    sys.path.insert(0, str(HERE))
    from scale import scenario_dict
    from agentwatt.sim.run import run
    from agentwatt.sim.scenario import scenario_from_dict
    managers: dict[int, int] = {}
    sizes: list = []
    log: list = []
    cls = kv.BlockManager
    orig = {m: getattr(cls, m) for m in ("match_prefix", "cost_of", "take", "allocate", "register", "release")}
    init = cls.__init__

    def wrap_init(self, num_blocks, block_size, prefix_caching=True):
        init(self, num_blocks, block_size, prefix_caching)
        managers[id(self)] = len(sizes)
        sizes.append((num_blocks, block_size))

    def copy_args(m, a):
        if m == "match_prefix":
            return (list(a[0][:a[1]]), a[1])
        if m == "register":
            return (list(a[0][:a[3]]), list(a[1][:a[3]]), a[2], a[3])
        if m in ("take", "release"):
            return (list(a[0]),)
        if m == "cost_of":
            return (list(a[0]), a[1])
        return a

    def wrapper(m):
        f = orig[m]

        def call(self, *a):
            log.append((managers[id(self)], m, copy_args(m, a)))
            return f(self, *a)
        return call
    cls.__init__ = wrap_init
    for m in orig:
        setattr(cls, m, wrapper(m))
    try:
        run(scenario_from_dict(scenario_dict(n), "kv_speedup"))
    finally:
        cls.__init__ = init
        for m, f in orig.items():
            setattr(cls, m, f)
    return sizes, log


def replay(cls, sizes: list, log: list) -> tuple[float, list]:
    mgrs = [cls(nb, bs) for nb, bs in sizes]
    out = []
    keep = out.append
    t0 = time.process_time()
    for i, m, a in log:
        keep(getattr(mgrs[i], m)(*a))
    cpu = time.process_time() - t0
    return cpu, out + [mg.free_order() for mg in mgrs]


def replay_main(n: int, baseline: str, old_src: str, repeat: int) -> int:
    import importlib.util
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as td:
        f = Path(td) / "kv_baseline.py"
        f.write_text(old_src)
        spec = importlib.util.spec_from_file_location("kv_baseline", f)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
    from agentwatt.sim import kv
    sizes, log = record(n)
    blocks = sum(len(a[0]) for _, m, a in log if m in ("match_prefix", "take", "release"))
    times: dict[str, list[float]] = {"baseline": [], "this tree": []}
    outs = {}
    for _ in range(repeat):
        for side, cls in (("baseline", old.BlockManager), ("this tree", kv.BlockManager)):
            cpu, outs[side] = replay(cls, sizes, log)
            times[side].append(cpu)
    print(f"load average after: {os.getloadavg()}")
    same = outs["baseline"] == outs["this tree"]
    print(f"\nKV operations of a {n:,}-session run: {len(log):,} calls on {len(sizes)} managers, "
          f"{blocks:,} blocks passed to match_prefix/take/release; baseline sim/kv.py = {baseline}")
    print("| side | replay CPU (min of %d) | all runs |" % repeat)
    print("|---|---|---|")
    for k, v in times.items():
        print(f"| {k} | {min(v):.2f} s | {', '.join(f'{x:.2f}' for x in v)} |")
    print(f"speed-up (baseline / this tree, min CPU): {min(times['baseline']) / min(times['this tree']):.2f}x")
    print(f"every return value and the final free queues identical: {'yes' if same else 'NO'}")
    return 0 if same else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--baseline", default=BASELINE, help="git revision of sim/kv.py to compare with")
    ap.add_argument("--repeat", type=int, default=2, help="runs per side (alternating)")
    ap.add_argument("--replay", type=int, default=None, metavar="N", help="replay the KV operations of N sessions")
    ap.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(int(a.child[0]), a.child[1], a.child[2])
        return 0
    old = subprocess.run(["git", "show", f"{a.baseline}:sim/kv.py"], cwd=HERE.parent, capture_output=True, text=True)
    if old.returncode:
        print(f"error: --baseline {a.baseline}: git show failed: {old.stderr.strip()}", file=sys.stderr)
        return 2
    if a.replay:
        return replay_main(a.replay, a.baseline, old.stdout, max(a.repeat, 3))
    print(f"load average before: {os.getloadavg()}", flush=True)
    res: dict[str, list[dict]] = {"baseline": [], "this tree": []}
    with tempfile.TemporaryDirectory() as td:
        kv_old = Path(td) / "kv_baseline.py"
        kv_old.write_text(old.stdout)
        for i in range(a.repeat):
            for side, f in (("baseline", str(kv_old)), ("this tree", "-")):
                out = Path(td) / f"{side}{i}.json"
                subprocess.run([sys.executable, __file__, "--child", str(a.sessions), f, str(out)], check=True)
                r = json.loads(out.read_text())
                res[side].append(r)
                print(f"{side:9s} run {i + 1}: run() {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU", flush=True)
    print(f"load average after: {os.getloadavg()}")
    med = {k: (statistics.median(r["wall_s"] for r in v), statistics.median(r["cpu_s"] for r in v))
           for k, v in res.items()}
    same = len({r["digest"] for v in res.values() for r in v}) == 1
    calls = res["this tree"][0]["calls"]
    print(f"\n{a.sessions:,} sessions, {calls:,} LLM calls; baseline sim/kv.py = {a.baseline}")
    print("| side | run() wall (median) | CPU (median) | calls / CPU s |")
    print("|---|---|---|---|")
    for k, (w, c) in med.items():
        print(f"| {k} | {w:.1f} s | {c:.1f} s | {calls / c:,.0f} |")
    print(f"speed-up (CPU, baseline / this tree): {med['baseline'][1] / med['this tree'][1]:.2f}x; "
          f"wall: {med['baseline'][0] / med['this tree'][0]:.2f}x")
    print(f"results identical (summary, calls, sessions): {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
