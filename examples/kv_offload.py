"""KV offload to host memory while agents wait on tools, and prefix-aware routing.

Covers: ``[engine] kv_retention`` = drop / keep / offload / cost, ``kv_host_gib_per_gpu``,
``kv_host_link``, ``kv_prefetch`` (``sim/kvtier.py``), the summary's ``kv_tiers`` block (host hit
rate, bytes moved, load time on the critical path, offload energy), ``[router] policy =
"prefix_aware"`` with ``prefix_max_imbalance`` and the ``router`` block, and ``agentwatt.plan.plan``
for the GPUs an SLO needs.

Scenario: (1) ReAct-HotpotQA agents (about 1.2 s Wikipedia calls) on one A100 serving
Llama-3.1-8B at a rate where the GPU's KV cache is short: each retention policy, the host tier on
PCIe Gen4 and on a slower link (Gen3); the same agents at a rate whose contexts the GPU holds; and
ReAct-WebShop, whose tools take 20 ms. The host tier is 64 GiB per GPU (half of a DGX A100's
1 TB / 8 GPUs). The first lines print the link speed below which reloading a token loses to
recomputing it. (2) The bundled Claude Code sessions (prompts of 15k–70k tokens, minutes between
calls) on one 70B replica of eight A100s: the GPU cannot hold every open session's context, the
host tier can. (3) The GPUs a TTFT p99 of 2 s needs for 6 ReAct sessions/s, per policy (full run
only). (4) Four ReAct variants with different few-shot prompts on four replicas short of KV, routed
least-loaded, with session affinity, and prefix-aware. Look at the prefill tokens computed and the session p99: offloading turns
recomputation into a PCIe transfer when the GPU is short of KV, and changes nothing when it is not.
"""
from __future__ import annotations

import sys
from dataclasses import replace

from _common import parse_args, plt, save, scenario

from agentwatt.core import step
from agentwatt.core.profile import load_profile
from agentwatt.sim import kvtier
from agentwatt.sim.run import run
from agentwatt.sim.scenario import RouterConfig

HOST = {"kv_host_gib_per_gpu": 64.0}
POLICIES = {"drop": {}, "keep": {"kv_retention": "keep"}, "offload": {"kv_retention": "offload", **HOST},
            "cost": {"kv_retention": "cost", **HOST},
            "offload+prefetch": {"kv_retention": "offload", "kv_prefetch": True, **HOST}}


def _line(label: str, s: dict) -> str:
    t = s.get("kv_tiers") or {}
    e = s.get("energy_per_session_j")
    extra = (f"; host hit {100 * (t['host_hit_rate'] or 0):.0f} %, {t['bytes_to_gpu'] / 1e9:.1f} GB back, "
             f"load wait {t['load_wait_s_total']:.2f} s, {t['offload_energy_j']:.1f} J moved") if t else ""
    return (f"  {label:<22} prefill {s['prefill_tokens_computed'] / 1e6:6.2f} M tokens, TTFT p99 "
            f"{s['ttft_s']['p99']:6.2f} s, session p99 {s['session_e2e_s']['p99']:6.1f} s, "
            f"{'n/a' if e is None else f'{e / 3600:.2f}'} Wh/session{extra}")


def breakeven(profile_name: str) -> None:
    """Recompute (a 2,048-token prefill chunk after 2,048 cached tokens) against reload, per token."""
    prof = load_profile(profile_name)
    n = 2048
    recompute = step.step_cost(prof, n, n * 2 * n, 0, 0).seconds / n
    gbps = kvtier.breakeven_gb_per_s(prof.model.kv_bytes_per_token, recompute)
    link = kvtier.LINKS[kvtier.SERVER_LINKS["dgx-a100"]].gb_per_s * prof.hardware.tp
    print(f"{profile_name}: recomputing a token costs {1e6 * recompute:.0f} us, reloading it over PCIe Gen4 "
          f"{1e6 * prof.model.kv_bytes_per_token / (link * 1e9):.1f} us; reload wins on any link above "
          f"{gbps:.2f} GB/s per replica")


def react(fast: bool) -> dict:
    dur = 30.0 if fast else 180.0
    out = {}
    print("ReAct-HotpotQA, 2.5 sessions/s, one A100 (GPU KV short):")
    for name, eng in POLICIES.items():
        out[name] = run(scenario(f"react {name}", [{"agent": "react-hotpotqa", "rate_per_s": 2.5}],
                                 duration_s=dur, drain_s=900.0, engine=eng)).summary
        print(_line(name, out[name]))
    for name, eng in (("offload, PCIe Gen3", {**POLICIES["offload"], "kv_host_link": "pcie-gen3-x16"}),):
        out[name] = run(scenario(name, [{"agent": "react-hotpotqa", "rate_per_s": 2.5}], duration_s=dur,
                                 drain_s=900.0, engine=eng)).summary
        print(_line(name, out[name]))
    print("ReAct-HotpotQA, 0.8 sessions/s (the GPU holds every context):")
    for name in ("drop", "offload"):
        s = run(scenario(f"react low {name}", [{"agent": "react-hotpotqa", "rate_per_s": 0.8}], duration_s=dur,
                         drain_s=900.0, engine=POLICIES[name])).summary
        out[f"low {name}"] = s
        print(_line(name, s))
    print("ReAct-WebShop (20 ms tools), 2.5 sessions/s:")
    for name in ("drop", "offload", "cost"):
        s = run(scenario(f"webshop {name}", [{"agent": "react-webshop", "rate_per_s": 2.5}], duration_s=dur,
                         drain_s=900.0, engine=POLICIES[name])).summary
        out[f"webshop {name}"] = s
        print(_line(name, s))
    return out


def claude_code(fast: bool) -> dict:
    rate, dur = (0.02, 300.0) if fast else (0.02, 1200.0)
    print(f"Claude Code sessions at {rate:g}/s on one Llama-3.1-70B replica (8 x A100):")
    out = {}
    for name in ("drop", "keep", "offload", "cost"):
        wl = [{"trace": "claude-code-sample", "format": "claude-code", "arrival": "poisson", "rate_per_s": rate,
               "repeat": True}]
        out[name] = run(scenario(f"claude code {name}", wl, profile="llama-3.1-70b_8xa100-40gb", duration_s=dur,
                                 drain_s=3000.0, engine=POLICIES[name])).summary
        print(_line(name, out[name]) + f"; GPU cache hit {100 * (out[name]['prefix_cache_hit_rate'] or 0):.0f} %")
    return out


def gpus_needed(out_dir) -> None:
    from agentwatt.plan.plan import parse_slo, plan
    toml = out_dir / "react.toml"
    toml.write_text('name = "react"\nprofile = "llama-3.1-8b_a100-40gb"\n[run]\nduration_s = 120\n'
                    'drain_timeout_s = 900\n[[workload]]\nagent = "react-hotpotqa"\nrate_per_s = 6.0\n',
                    encoding="utf-8")
    print("A100s for TTFT p99 <= 2 s, ReAct-HotpotQA at 6 sessions/s (plan, 2 seeds, 90 %):")
    for name in ("drop", "keep", "offload", "cost"):
        fixed = {f"engine.{k}": v for k, v in POLICIES[name].items()}
        res = plan(toml, [parse_slo("ttft_s.p99<=2")], out_dir / f"plan-{name}", lo=1, hi=8, seeds=2,
                   fixed=fixed, plot=False)
        tried = ", ".join(f"{k}: {a.checks[0].mean:.2f} s" for k, a in sorted(res.evaluated.items()))
        print(f"  {name:<8} {res.answer if res.answer else 'none'} replicas (TTFT p99 by replicas: {tried})")


def routing(fast: bool) -> dict:
    """Four ReAct variants whose few-shot prompts differ (4, 6, 8, 10 examples: four shared prompt
    blocks) on four replicas that hold 8,000 KV tokens each, too few for all four blocks."""
    wl = [{"agent": "react-hotpotqa", "knobs": {"fewshot": f}, "rate_per_s": 0.5} for f in (4, 6, 8, 10)]
    dur = 20.0 if fast else 60.0
    print("Four ReAct prompt variants, 2 sessions/s, four replicas of 8,000 KV tokens: routing")
    out = {}
    for label, router in (("least loaded", {"session_affinity": False}), ("affinity", {}),
                          ("prefix-aware", {"policy": "prefix_aware", "session_affinity": False,
                                            "prefix_max_imbalance": 8}),
                          ("prefix-aware+affinity", {"policy": "prefix_aware", "prefix_max_imbalance": 8})):
        sc = scenario(label, wl, duration_s=dur, drain_s=900.0, replicas=4, engine={"kv_capacity_tokens": 8000})
        s = run(replace(sc, router=RouterConfig(**router))).summary
        out[label] = s
        r = s.get("router") or {}
        print(f"  {label:<22} GPU cache hit {100 * s['prefix_cache_hit_rate']:.1f} %, TTFT p99 {s['ttft_s']['p99']:.2f} s, "
              f"session p99 {s['session_e2e_s']['p99']:.1f} s"
              + (f"; followed a prefix {r['prefix_picks']} of {r['picks']} times, load above the least "
                 f"loaded {r['extra_load_mean']:.2f} mean / {r['extra_load_max']} max, busiest replica "
                 f"{r['calls_per_replica_max_over_mean']:.2f} x mean calls" if r else ""))
    return out


def main(argv: list[str] | None = None) -> None:
    out, fast = parse_args("kv_offload", __doc__, argv)
    for name in ("llama-3.1-8b_a100-40gb", "llama-3.1-70b_8xa100-40gb"):
        breakeven(name)
    rx = react(fast)
    cc = claude_code(fast)
    if not fast:
        gpus_needed(out)
    rt = routing(fast)
    p = plt()
    fig, (a, b, c) = p.subplots(1, 3, figsize=(15, 3.8))
    names = list(POLICIES) + ["offload, PCIe Gen3"]
    a.bar(range(len(names)), [rx[n]["session_e2e_s"]["p99"] for n in names])
    a.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    a.set_ylabel("session p99 (s)")
    a.set_title("ReAct-HotpotQA, GPU KV short")
    b.bar(range(len(cc)), [s["prefill_tokens_computed"] / 1e6 for s in cc.values()])
    b.set_xticks(range(len(cc)), list(cc), fontsize=8)
    b.set_ylabel("prompt tokens computed (millions)")
    b.set_title("Claude Code on a 70B replica")
    c.bar(range(len(rt)), [100 * s["prefix_cache_hit_rate"] for s in rt.values()])
    c.set_xticks(range(len(rt)), list(rt), rotation=30, ha="right", fontsize=8)
    c.set_ylabel("GPU prefix-cache hit rate (%)")
    c.set_title("routing: 4 prompt variants, 4 replicas")
    for ax in (a, b, c):
        ax.grid(alpha=0.3, axis="y")
    save(fig, out / "kv_offload.png")


if __name__ == "__main__":
    sys.exit(main())
