"""Output digests of 8 varied scenarios: prove that a refactor changes no simulated number.

    python benchmarks/digests.py --record benchmarks/digests.json   # before a change
    python benchmarks/digests.py --check benchmarks/digests.json    # after it: exit 1 on any difference

Each scenario is run through the public CLI (``agentwatt simulate`` / ``agentwatt sweep --serial``),
so the check does not depend on where modules live. The digest of a run is the SHA-256 of
``summary.json`` without its wall-clock lines and of every Parquet file it wrote. A change of the
simulated numbers (a new profile or model) is expected to change the digests: record them anew then,
and say so in the commit.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# wall-clock lines, and the absolute path of the scenario file that a sweep point records
_WALL = re.compile(rb'^\s*"(wall_time_s|scenario|scenario_source)": [^\n]*\n', re.M)

_BASE = """
name = "{name}"
profile = "{profile}"
[run]
seed = 3
duration_s = {duration}
drain_timeout_s = 300
[fleet]
replicas = {replicas}
"""

_VIDUR_CSV = "arrived_at,num_prefill_tokens,num_decode_tokens\n" + "".join(
    f"{0.37 * i:.3f},{200 + 37 * (i % 11)},{20 + 7 * (i % 5)}\n" for i in range(60))

SCENARIOS: dict[str, str] = {
    "default": "",  # the built-in default scenario
    "agent-mix": _BASE.format(name="mix", profile="llama-3.1-8b_a100-40gb", duration=60, replicas=2) + """
[[workload]]
mix = { chatbot-sharegpt = 0.5, react-hotpotqa = 0.2, reflexion-hotpotqa = 0.1, lats-hotpotqa = 0.1, llmcompiler-hotpotqa = 0.1 }
rate_per_s = 2.0
""",
    "azure": _BASE.format(name="azure", profile="llama-3.1-8b_a100-40gb", duration=60, replicas=2) + """
[[workload]]
trace = "azure-conv-head2000"
limit = 300
""",
    "mooncake": _BASE.format(name="mooncake", profile="llama-3.1-8b_a100-40gb", duration=60, replicas=2) + """
[[workload]]
trace = "mooncake-conv-head1000"
format = "mooncake"
limit = 200
time_scale = 0.2
""",
    "claude-code-tracelab": _BASE.format(name="agentic traces", profile="llama-3.1-8b_a100-40gb", duration=60,
                                         replicas=2) + """
[[workload]]
trace = "claude-code-sample"
format = "claude-code"
arrival = "poisson"
rate_per_s = 0.2
repeat = true
[[workload]]
trace = "tracelab-example"
format = "tracelab"
arrival = "poisson"
rate_per_s = 0.2
repeat = true
""",
    "vidur-csv": _BASE.format(name="vidur csv", profile="llama-3.1-8b_a100-40gb", duration=60, replicas=1) + """
[[workload]]
trace = "{vidur_csv}"
format = "vidur-csv"
""",
    "caps-facility": _BASE.format(name="caps", profile="llama-3.1-8b_a100-40gb", duration=60, replicas=4) + """
[engine]
kv_retention = "ttl"
kv_retention_ttl_s = 5
[router]
policy = "round_robin"
session_affinity = false
[facility]
gpu_cap_w = 250
pue = 1.2
gpu_noise_frac = 0.05
meter_window_s = 1.0
[[workload]]
agent = "react-webshop"
rate_per_s = 1.5
[[workload]]
agent = "chatbot-sharegpt"
arrival = "diurnal"
rate_per_s = 2.0
""",
    "tp8-70b": _BASE.format(name="70b tp8", profile="llama-3.1-70b_8xa100-40gb", duration=60, replicas=1) + """
[[workload]]
agent = "react-hotpotqa"
rate_per_s = 0.5
[[workload]]
agent = "cot-math"
arrival = "closed"
concurrency = 4
""",
}

SWEEP = ("sweep", ["--set", "fleet.replicas=1,2", "--set", "workload.0.rate_per_s=0.5,1", "--seeds", "2"])


def _digest_dir(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix == ".parquet" or p.name == "summary.json" or (p.suffix == ".json" and "points" in p.parts):
            raw = p.read_bytes()
            if p.suffix == ".json":
                raw = _WALL.sub(b"", raw)
            out[str(p.relative_to(folder))] = hashlib.sha256(raw).hexdigest()
    return out


def _cli(args: list[str], cwd: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "agentwatt.cli", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"agentwatt {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")


def compute() -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "vidur.csv").write_text(_VIDUR_CSV, encoding="utf-8")
        for name, text in SCENARIOS.items():
            # relative paths only: the scenario's file name is written into the results
            args = ["simulate"]
            if text:
                (root / f"{name}.toml").write_text(text.replace("{vidur_csv}", "vidur.csv"), encoding="utf-8")
                args.append(f"{name}.toml")
            _cli(args + ["--out", f"out-{name}", "--no-plots"], root)
            result[name] = _digest_dir(root / f"out-{name}")
            print(f"{name:24s} {len(result[name])} files", flush=True)
        (root / "sweep.toml").write_text(SCENARIOS["agent-mix"].replace("duration_s = 60", "duration_s = 20"),
                                         encoding="utf-8")
        _cli([SWEEP[0], "sweep.toml", *SWEEP[1], "--out", "out-sweep", "--serial", "--no-plots"], root)
        d = _digest_dir(root / "out-sweep")
        result["sweep"] = {k: v for k, v in d.items() if k.startswith("points")}
        print(f"{'sweep':24s} {len(result['sweep'])} files", flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--record", type=Path)
    g.add_argument("--check", type=Path)
    a = ap.parse_args()
    got = compute()
    if a.record:
        a.record.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"recorded {sum(len(v) for v in got.values())} digests in {a.record}")
        return 0
    want = json.loads(a.check.read_text(encoding="utf-8"))
    bad = [(s, f) for s in sorted(set(want) | set(got)) for f in sorted(set(want.get(s, {})) | set(got.get(s, {})))
           if want.get(s, {}).get(f) != got.get(s, {}).get(f)]
    for s, f in bad:
        print(f"DIFFERENT {s}: {f}")
    print(f"{sum(len(v) for v in got.values())} digests, {len(bad)} different")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
