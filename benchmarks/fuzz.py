"""Long fuzz run: how many generated inputs each parser/builder got, and how many failed badly.

    python benchmarks/fuzz.py [--cases 2000] [--valid-scenarios 1000] [--seed N] [--only TEXT]

Two kinds of input per target (the short profile of the same targets runs in CI,
tests/test_fuzz_short.py):

* **valid** inputs must run: random legal scenarios are simulated and their summaries checked
  (benchmarks/fuzzing/valid.py), generated trace files must load back to exactly their rows, perturbed
  profiles must load field by field and simulate, and an unmutated base scenario/profile must run.
  A valid input *fails* on any exception (a clean rejection too) or a broken property.
* **invalid** inputs (mutated dicts, arbitrary bytes; some happen to be valid) must run or be
  rejected with a one-line AgentwattError; anything else is a *bad* failure.

Per target it prints valid tried / failed and invalid tried / ran / rejected / bad, then the totals.
Goal: 0 failed, 0 bad. Up to three failing inputs per target are printed (shortened); to shrink
one to a minimal example, run its strategy under hypothesis with a failing assertion.
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

from fuzzing import targets as F  # benchmarks/fuzzing/ (this script's folder is on sys.path)
from fuzzing import valid as V
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

# kinds of target: every case valid, every case invalid, or (data, n_mutations) with n == 0 valid
VALID, INVALID, MUTATED = "valid", "invalid", "mutated"


def run_target(name: str, strategy, fn, cases: int, kind: str, rng_seed: int | None) -> dict:
    stats = {"valid_tried": 0, "valid_failed": 0, "invalid_tried": 0, "ran": 0, "rejected": 0, "bad": 0,
             "examples": []}
    tmp = Path(tempfile.mkdtemp(prefix=f"fuzz-{name.replace(' ', '_')}-"))

    def note(text: str) -> None:
        if len(stats["examples"]) < 3:
            stats["examples"].append(text[:300])

    @settings(max_examples=cases, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(strategy)
    def body(case):
        valid = kind == VALID or (kind == MUTATED and case[1] == 0)
        data = case[0] if kind == MUTATED else case
        stats["valid_tried" if valid else "invalid_tried"] += 1
        try:
            out = fn(data, tmp)
        except F.BadFailure as e:
            stats["valid_failed" if valid else "bad"] += 1
            note(f"{'valid' if valid else 'invalid'}: {e} | input: {_short(data)}")
            return
        if valid and out != "ran":
            stats["valid_failed"] += 1
            note(f"valid input rejected | input: {_short(data)}")
        elif not valid:
            stats[out] += 1

    if rng_seed is not None:
        body = seed(rng_seed)(body)
    t = time.perf_counter()
    body()
    stats["wall_s"] = round(time.perf_counter() - t, 1)
    return stats


def _short(data) -> str:
    try:
        return json.dumps(data, default=repr)[:400]
    except (TypeError, ValueError):
        return repr(data)[:400]


def targets(cases: int, valid_scenarios: int) -> list[tuple]:
    from agentwatt.core.profile import load_profile
    from agentwatt.traces import loaders
    base_profile = json.loads(json.dumps(load_profile("llama-3.1-8b_a100-40gb").to_dict()))
    out = [
        ("scenario (valid)", V.valid_scenarios(), V.valid_scenario_target, valid_scenarios, VALID),
        ("scenario (mutated)", F.mutated(F.VALID_SCENARIO), F.scenario_target, max(1, cases // 4), MUTATED),
        ("profile (valid)", V.valid_profiles(), V.profile_roundtrip_target, max(1, cases // 4), VALID),
        ("profile (mutated)", F.mutated(base_profile), F.profile_target, cases, MUTATED),
    ]
    for fmt in sorted(loaders.LOADERS):
        out.append((f"{fmt} (valid)", V.valid_traces(fmt), V.trace_roundtrip_target, cases, VALID))
        suffix = ".csv" if fmt in ("azure-2023", "vidur-csv") else ".jsonl"
        out.append((f"{fmt} (bytes)", st.binary(max_size=400),
                    lambda raw, d, fmt=fmt, suffix=suffix: F.bytes_target(
                        lambda p: loaders.load_trace(fmt, p), raw, d, suffix), cases, INVALID))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=2000,
                    help="inputs per trace and profile target (mutated scenarios and valid profiles: a quarter)")
    ap.add_argument("--valid-scenarios", type=int, default=1000,
                    help="valid scenarios to simulate (each runs 5-30 s of simulated arrivals, ~0.1-1 s)")
    ap.add_argument("--seed", type=int, default=None, help="fix hypothesis's random seed (default: random)")
    ap.add_argument("--only", default=None, help="run only targets whose name contains this text")
    args = ap.parse_args()
    t0 = time.perf_counter()
    head = (f"{'target':<24}{'valid':>8}{'failed':>8}{'invalid':>9}{'ran':>7}{'rejected':>10}{'bad':>6}"
            f"{'wall s':>8}")
    print(head)
    print("-" * len(head))
    totals = collections.Counter()
    for name, strat, fn, n, kind in targets(args.cases, args.valid_scenarios):
        if args.only and args.only not in name:
            continue
        s = run_target(name, strat, fn, n, kind, args.seed)
        for k in ("valid_tried", "valid_failed", "invalid_tried", "ran", "rejected", "bad"):
            totals[k] += s[k]
        print(f"{name:<24}{s['valid_tried']:>8}{s['valid_failed']:>8}{s['invalid_tried']:>9}{s['ran']:>7}"
              f"{s['rejected']:>10}{s['bad']:>6}{s['wall_s']:>8}", flush=True)
        for ex in s["examples"]:
            print(f"    failed: {ex}")
    print("-" * len(head))
    tried = totals["valid_tried"] + totals["invalid_tried"]
    print(f"inputs tried: {tried:,} ({totals['valid_tried']:,} valid, {totals['invalid_tried']:,} invalid) "
          f"in {time.perf_counter() - t0:.0f} s")
    print(f"valid inputs that failed: {totals['valid_failed']}")
    print(f"invalid inputs that failed badly: {totals['bad']}")


if __name__ == "__main__":
    main()
