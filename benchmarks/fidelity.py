"""Fidelity of a calibrated profile against a real serving loop on the same device.

    python benchmarks/fidelity.py                       # tiny on CPU: calibrate, then a 2-minute check
    python benchmarks/fidelity.py --minutes 4 --seed 3 --profile tiny-cpu.json   # reuse a profile
    python benchmarks/fidelity.py --device cuda --preset smollm2-135m          # on a GPU (meter: NVML)

Runs ``agentwatt calibrate`` (unless ``--profile`` is given) and then ``calibrate check`` with a longer
setting than the tests, and prints the figures: p50/p99 TTFT and end-to-end latency errors (for the
profile as calibrated and for the profile plus the loop's own measured costs), energy per request
error or "unavailable: reason", the power-series metrics where a meter exists, and the probes that
explain a miss. ``--out`` keeps the check's JSON report; ``--repeat N`` repeats the check N times
with seeds ``seed .. seed+N-1`` and prints the spread.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile", type=Path, default=None, help="skip calibration: check this profile")
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--rate", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="report JSON of the last check")
    args = ap.parse_args(argv)

    from agentwatt.validate.check import CheckSettings, check, summarize_check
    from agentwatt.cli.calibrate import summarize
    from agentwatt.calibrate.run import calibrate

    with tempfile.TemporaryDirectory(prefix="agentwatt-fidelity-") as tmp:
        prof_path = args.profile
        if prof_path is None:
            prof_path = Path(tmp) / f"{args.preset}-{args.device.replace(':', '')}.json"
            t0 = time.perf_counter()
            prof = calibrate(args.preset, args.device, prof_path, progress=False)
            print(summarize(prof, prof_path))
            print(f"calibration: {time.perf_counter() - t0:.1f} s\n")
        rows = []
        for i in range(args.repeat):
            st = CheckSettings(minutes=args.minutes, rate_per_s=args.rate, seed=args.seed + i)
            out = args.out if i == args.repeat - 1 else None
            r = check(prof_path, args.device, st, out)
            print(summarize_check(r))
            print(f"check wall time: {r['wall_time_s']:.1f} s\n")
            rows.append(r)
    if args.repeat > 1:
        print(f"spread over {args.repeat} seeds (profile as calibrated / + loop costs):")
        for k, name in (("ttft_s", "TTFT"), ("e2e_s", "e2e")):
            for q in ("p50", "p99"):
                a = [100 * r["latency"][k]["error"][q] for r in rows]
                b = [100 * r["latency_loop_adjusted"][k]["error"][q] for r in rows]
                print(f"  {name} {q}: {statistics.mean(a):+.1f} % (min {min(a):+.1f}, max {max(a):+.1f}) / "
                      f"{statistics.mean(b):+.1f} % (min {min(b):+.1f}, max {max(b):+.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
