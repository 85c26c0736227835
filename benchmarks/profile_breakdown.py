"""Where a run's time goes, by part of the simulator, from a py-spy sampling profile.

    py-spy record -r 250 -f raw -o /tmp/spy.txt -- python benchmarks/scale.py --child 10000 /tmp/o.json
    python benchmarks/profile_breakdown.py /tmp/spy.txt [--top 15]

py-spy samples the stacks of the running interpreter from outside (no tracing overhead, unlike
cProfile, which inflates code that makes many small calls). Each sample is charged to the
innermost frame that belongs to one of the parts below; samples under an import are start-up.
Prints a table of shares and the functions with the most own samples.
"""
from __future__ import annotations

import argparse
import collections
import re
import sys

PARTS = [
    ("KV cache (sim/kv.py: prefix match, block alloc/free, hashing)", r"sim/kv\.py"),
    ("step composition (sim/batching.py)", r"sim/batching\.py"),
    ("replica step loop, energy bins (sim/replica.py, sim/metrics.py)", r"sim/replica\.py|sim/metrics\.py"),
    ("step time and power model (core/step.py, core/profile.py)",
     r"core/step\.py|core/profile\.py"),
    ("SimPy event loop (simpy/*)", r"simpy/"),
    ("sessions and routing (sim/session.py, sim/router.py)", r"sim/session\.py|sim/router\.py"),
    ("workload generation (sim/workload.py, traces/*)", r"sim/workload\.py|traces/"),
]
OTHER = "imports, start-up, summary and output, other"


def breakdown(lines) -> tuple[int, collections.Counter, collections.Counter]:
    parts: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in lines:
        line = line.rstrip("\n")
        if not line or " " not in line:
            continue
        stack, n_s = line.rsplit(" ", 1)
        n = int(n_s)
        total += n
        frames = stack.split(";")
        own[re.sub(r":\d+\)", ")", frames[-1])] += n
        if "importlib" in stack:
            parts[OTHER] += n
            continue
        for f in reversed(frames):
            name = next((p for p, pat in PARTS if re.search(pat, f)), None)
            if name:
                parts[name] += n
                break
        else:
            parts[OTHER] += n
    return total, parts, own


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("raw", help="py-spy record -f raw output")
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args(argv)
    try:
        with open(a.raw, encoding="utf-8") as f:
            total, parts, own = breakdown(f)
    except (OSError, ValueError) as e:
        print(f"error: {a.raw}: {e}: expected the output of py-spy record -f raw", file=sys.stderr)
        return 2
    if not total:
        print(f"error: {a.raw}: no samples: expected the output of py-spy record -f raw", file=sys.stderr)
        return 2
    print(f"{total} samples")
    print("| part | share |")
    print("|---|---|")
    for name in [p for p, _ in PARTS] + [OTHER]:
        print(f"| {name} | {parts[name] / total:.0%} |")
    print(f"\nTop {a.top} functions by own samples:")
    print("| function | share |")
    print("|---|---|")
    for fn, n in own.most_common(a.top):
        print(f"| `{fn}` | {n / total:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
