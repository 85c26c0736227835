"""Long fuzz run: how many generated inputs each parser/builder got, and how many failed badly.

    python benchmarks/fuzz.py [--cases 10000]

A bad failure is anything but running the input or rejecting it with a one-line AgentwattError.
Goal: 0. The short profile of the same targets runs in CI (tests/test_fuzz_short.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import fuzz_targets as F  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def run_target(name, strategy, fn, cases: int) -> dict:
    stats = {"tried": 0, "ran": 0, "rejected": 0, "bad": 0, "examples_of_bad": []}
    tmp = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))

    @settings(max_examples=cases, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(strategy)
    def body(case):
        stats["tried"] += 1
        try:
            stats[fn(case, tmp)] += 1
        except F.BadFailure as e:
            stats["bad"] += 1
            if len(stats["examples_of_bad"]) < 3:
                stats["examples_of_bad"].append(str(e)[:200])

    t = time.perf_counter()
    body()
    stats["wall_s"] = round(time.perf_counter() - t, 1)
    return stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10_000, help="inputs per target")
    args = ap.parse_args()
    from agentwatt.calibrate.profile import load_profile
    from agentwatt.traces import loaders
    valid_profile = json.loads(json.dumps(load_profile("llama-3.1-8b_a100-40gb").to_dict()))
    targets = [
        ("profile", F.mutated(valid_profile), lambda c, d: F.profile_target(c[0], d)),
        ("scenario", F.mutated(F.VALID_SCENARIO), lambda c, d: F.scenario_target(c[0], d)),
        ("azure-2023 bytes", st.binary(max_size=400),
         lambda raw, d: F.bytes_target(loaders.load_azure_2023, raw, d, ".csv")),
    ]
    fmts = getattr(loaders, "LOADERS", {})
    for fmt in sorted(fmts):
        if fmt == "azure-2023":
            continue
        targets.append((f"{fmt} bytes", st.binary(max_size=400),
                        lambda raw, d, fmt=fmt: F.bytes_target(lambda p: loaders.load_trace(fmt, p), raw, d)))
    total_bad = 0
    print(f"{'target':<22}{'tried':>8}{'ran':>8}{'rejected':>10}{'bad':>6}{'wall s':>8}")
    for name, strat, fn in targets:
        n = args.cases if name != "scenario" else max(1, args.cases // 10)
        s = run_target(name, strat, fn, n)
        total_bad += s["bad"]
        print(f"{name:<22}{s['tried']:>8}{s['ran']:>8}{s['rejected']:>10}{s['bad']:>6}{s['wall_s']:>8}")
        for ex in s["examples_of_bad"]:
            print(f"    bad: {ex}")
    print(f"bad failures in total: {total_bad}")


if __name__ == "__main__":
    main()
