"""The KV block manager against an earlier revision of itself, in the same run: speed and sameness.

    python benchmarks/kv_speedup.py                          # 10k sessions, baseline = 3d31d8b
    python benchmarks/kv_speedup.py --sessions 100000 --repeat 1 --baseline <rev>

Runs the ``scale.py`` scenario (N agent sessions on N / 1,000 A100s, prefix caching on) in fresh
child processes, alternating between this tree's ``sim/kv.py`` and the one at ``--baseline``
(read with ``git show``, loaded in the child in place of ``agentwatt.sim.kv``; everything else is
this tree). Prints each child's ``run()`` wall and CPU time, the ratio of the medians, and whether
both sides gave the same summary and the same call and session tables (SHA-256 of the frames).
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--baseline", default=BASELINE, help="git revision of sim/kv.py to compare with")
    ap.add_argument("--repeat", type=int, default=2, help="runs per side (alternating)")
    ap.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(int(a.child[0]), a.child[1], a.child[2])
        return 0
    old = subprocess.run(["git", "show", f"{a.baseline}:sim/kv.py"], cwd=HERE.parent, capture_output=True, text=True)
    if old.returncode:
        print(f"error: --baseline {a.baseline}: git show failed: {old.stderr.strip()}", file=sys.stderr)
        return 2
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
