"""Prefix caching on vs off for agents.

Covers: ``[engine] prefix_caching``, the calls table (``prompt_tokens``, ``cached_tokens``,
``prefill_computed_tokens``, time to first token), ``prefix_cache_hit_rate`` and
``kv_mean_utilization`` / ``kv_peak_utilization``.

Scenario: one A100 serves ReAct-HotpotQA agents arriving at 0.8 sessions/s. Each agent step sends
the whole conversation so far (instructions, question, every thought and every Wikipedia page) and
adds a little. With prefix caching the replica keeps the KV of earlier steps and computes only the
new tokens; without it every step re-reads the whole prompt. Look at the prefill tokens computed,
the time to first token, and the session tail latency; then at KV memory, which caching also saves
because sessions share their instruction block.
"""
from __future__ import annotations

import sys

import numpy as np
from _common import parse_args, plt, save, scenario

from agentwatt.sim.plots import ccdf
from agentwatt.sim.report import call_metrics
from agentwatt.sim.run import run


def main(argv: list[str] | None = None) -> None:
    out, fast = parse_args("prefix_caching", __doc__, argv)
    duration = 60.0 if fast else 300.0
    res = {}
    for on in (True, False):
        sc = scenario(f"caching {'on' if on else 'off'}", [{"agent": "react-hotpotqa", "rate_per_s": 0.8}],
                      duration_s=duration, drain_s=600.0, engine={"prefix_caching": on})
        res[on] = run(sc)
    for on, r in res.items():
        s = r.summary
        c = r.calls
        print(f"caching {'on ' if on else 'off'}: prefill tokens computed {s['prefill_tokens_computed']:>9,} of "
              f"{int(c['prompt_tokens'].sum()):,} prompt tokens; TTFT p50 {s['ttft_s']['p50']:.2f} s; session p99 "
              f"{s['session_e2e_s']['p99']:.1f} s; KV mean {100 * s['kv_mean_utilization']:.1f} % peak "
              f"{100 * s['kv_peak_utilization']:.0f} %")
    p = plt()
    fig, (a, b, c) = p.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    labels = ["caching on", "caching off"]
    a.bar(labels, [res[o].summary["prefill_tokens_computed"] / 1e6 for o in (True, False)])
    a.set_ylabel("prefill tokens computed (millions)")
    a.set_title("work: prompt tokens the GPU computed")
    for on, label in zip((True, False), labels):
        ccdf(b, call_metrics(res[on].calls)["ttft_s"], label)
    b.set_xlabel("time to first token per LLM call (s)")
    b.legend(fontsize=8)
    b.set_title("latency: waiting for the first token")
    x = np.arange(2)
    for i, (key, name) in enumerate((("kv_mean_utilization", "mean"), ("kv_peak_utilization", "peak"))):
        c.bar(x + (i - 0.5) * 0.4, [100 * res[o].summary[key] for o in (True, False)], 0.4, label=name)
    c.set_xticks(x, labels)
    c.set_ylabel("KV cache in use (% of the pool)")
    c.legend(fontsize=8)
    c.set_title("memory: KV cache in use")
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
    save(fig, out / "prefix_caching.png")


if __name__ == "__main__":
    sys.exit(main())
