"""Figs. 9 and 12: what prefix caching saves — prefill work and latency for one request alone, and
KV-cache memory when a replica serves ReAct at low load.

Fig. 9: every tool-using Table II pair runs alone with ``[engine] prefix_caching`` on and off.
Prefill work = prompt tokens computed; prefill latency = the sum over calls of time to first token;
per-call latency = mean LLM call end-to-end. Fig. 12: ReAct at the paper's operating points (0.2
sessions/s HotpotQA, 0.1 WebShop), KV in use averaged over the run and at its peak, in GB
(``kv_*_utilization`` × the replica's KV capacity × bytes per token).
"""
from __future__ import annotations

import numpy as np

from agentwatt.paper import figures
from agentwatt.paper.rows import Row, Section, md_table
from agentwatt.paper.runs import VLLM_066, Lab
from agentwatt.paper.settings import DESIGN_POINTS, Settings
from agentwatt.paper.values import paper
from agentwatt.traces.agents import make_agent

TOL = 0.25


def _alone_cache_effect(lab: Lab, agent: str, n: int) -> dict[str, float]:
    out = {}
    for pc in (True, False):
        res = lab.alone(agent, n, prefix_caching=pc, engine=VLLM_066)
        c = res.calls[res.calls["status"] == "finished"]
        out[pc] = {"prefill_tokens": res.summary["prefill_tokens_computed"],
                   "prefill_s": float((c["first_token_s"] - c["submit_s"]).sum()),
                   "call_s": float((c["finish_s"] - c["submit_s"]).mean()),
                   "kv_peak": res.summary["kv_peak_utilization"]}
    on, off = out[True], out[False]
    return {"prefill_work": 1 - on["prefill_tokens"] / off["prefill_tokens"],
            "prefill_latency": 1 - on["prefill_s"] / off["prefill_s"],
            "call_latency": 1 - on["call_s"] / off["call_s"],
            "kv_peak": 1 - on["kv_peak"] / off["kv_peak"]}


def _kv_gb(lab: Lab, agent: str, rate: float, duration_s: float, knobs: dict | None = None) -> dict[bool, dict[str, float]]:
    out = {}
    for pc in (True, False):
        res = lab.poisson(agent, rate, duration_s, prefix_caching=pc, engine=VLLM_066, knobs=knobs)
        s = res.summary
        gb = s["kv_capacity_tokens_per_replica"] * res.profile.model.kv_bytes_per_token / 1e9
        out[pc] = {"avg": s["kv_mean_utilization"] * gb, "max": s["kv_peak_utilization"] * gb}
    return out


def _saved(kv: dict) -> dict[str, float]:
    """Share of KV memory caching saves, average and peak, mean over the benchmarks."""
    return {m: float(np.mean([1 - kv[b][True][m] / kv[b][False][m] for b in kv])) for m in ("avg", "max")}


def section(lab: Lab, st: Settings, out_dir) -> Section:
    agents = [a for a in DESIGN_POINTS if not a.startswith("cot-")]
    eff = {a: _alone_cache_effect(lab, a, st.design_sessions) for a in agents}
    lats = [a for a in agents if a.startswith("lats-")]
    kv = {"hotpotqa": _kv_gb(lab, "react-hotpotqa", paper("fig12.hotpotqa_qps"), st.kv_duration_s),
          "webshop": _kv_gb(lab, "react-webshop", paper("fig12.webshop_qps"), st.kv_duration_s)}
    red = _saved(kv)
    # one change: a shared instruction + few-shot block twice as long (FEWSHOT_PROBE tokens per example)
    probe = _saved({b: _kv_gb(lab, f"react-{b}", paper(f"fig12.{b}_qps"), st.kv_duration_s,
                              {"fewshot_example_tokens": 2 * make_agent(f"react-{b}").task.fewshot_example_tokens})
                    for b in kv})
    share = {b: make_agent(f"react-{b}").shared_prefix.tokens for b in kv}
    calls_all = float(np.mean([e["call_latency"] for e in eff.values()]))
    hq_ws = [a for a in eff if a.endswith("-hotpotqa") or a.endswith("-webshop")]
    calls_hw = float(np.mean([eff[a]["call_latency"] for a in hq_ws]))
    rows = [
        Row("prefill latency saved by prefix caching (agents alone)",
            float(np.mean([e["prefill_latency"] for e in eff.values()])), "fig9.prefill_reduction", "share", TOL,
            main=True, note="each call re-reads a prompt that mostly repeats the previous call's; the cache skips it"),
        Row("LLM call latency saved by prefix caching", calls_all,
            "fig9.llm_latency_reduction", "share", TOL, main=True,
            note="mean over the 14 tool-using pairs of 1 − (mean call latency, caching on ÷ off); smaller than the "
                 "prefill saving: writing the answer (decode) is not cached",
            why=f"the six MATH/HumanEval pairs save 1-7 % (answers of hundreds of tokens, decode-bound) and pull the "
                f"mean down: the 8 HotpotQA/WebShop pairs alone save {100 * calls_hw:.1f} %; the engine's step "
                f"budget moves it (2048-token steps: 11.0 %, vLLM 0.6.6's 512: this run)"),
        Row("LATS peak KV memory saved within one request", float(np.mean([eff[a]["kv_peak"] for a in lats])),
            "fig12.lats_kv_saving", "share", TOL,
            note="LATS's parallel branches share their prompt prefix, so the cache stores it once"),
        Row("average KV memory saved, ReAct at low load", red["avg"], "fig12.kv_avg_reduction", "share", TOL,
            main=True, note="mean of HotpotQA (0.2/s) and WebShop (0.1/s); shared instructions are stored once",
            why=f"only the shared instruction + few-shot block ({share['hotpotqa']:,}/{share['webshop']:,} tokens) is "
                f"shared between sessions; one change, a block twice as long, moves it to {100 * probe['avg']:.1f} %"),
        Row("peak KV memory saved, ReAct at low load", red["max"], "fig12.kv_max_reduction", "share", TOL,
            main=True, note="the peak is set by the few longest contexts in flight together",
            why=f"at 0.2/0.1 sessions/s about one call is in flight at a time, so only the shared instruction + "
                f"few-shot block ({share['hotpotqa']:,}/{share['webshop']:,} tokens) is stored once, while the peak "
                f"comes from a few looping sessions whose own history reaches 10-17K tokens; one change, a few-shot "
                f"block twice as long, moves peak/average saving to {100 * probe['max']:.1f} / "
                f"{100 * probe['avg']:.1f} %"),
    ]
    for b in ("hotpotqa", "webshop"):
        for m, word in (("avg", "average"), ("max", "peak")):
            for pc, tag in ((False, "off"), (True, "on")):
                rows.append(Row(f"ReAct-{b} {word} KV, caching {tag}", kv[b][pc][m], f"fig12.{b}_kv_{m}_gb_{tag}", "GB",
                                check="info", note="GB of KV cache in use; the paper's bar is a secondary visual "
                                                   "reading, shown for scale and not checked"))
    table = md_table(["agent-benchmark", "prefill tokens saved", "prefill latency saved", "call latency saved",
                      "peak KV saved"],
                     [[a, f"{100 * e['prefill_work']:.0f} %", f"{100 * e['prefill_latency']:.0f} %",
                       f"{100 * e['call_latency']:.0f} %", f"{100 * e['kv_peak']:.0f} %"] for a, e in eff.items()])
    fig9 = figures.grouped_bars({a: {"prefill latency": 100 * e["prefill_latency"],
                                     "call latency": 100 * e["call_latency"]} for a, e in eff.items()},
                                "% saved by prefix caching", "Fig. 9 (simulated): prefix caching, one request alone",
                                out_dir / "fig9_prefix_caching.png")
    fig12 = figures.grouped_bars({f"{b} {m}": {"caching off": kv[b][False][m], "caching on": kv[b][True][m]}
                                  for b in kv for m in ("avg", "max")},
                                 "KV cache in use (GB)", "Fig. 12 (simulated): KV memory, ReAct at low load",
                                 out_dir / "fig12_kv_memory.png")
    return Section("fig9_12", "Figs. 9 and 12 — prefix caching on vs off",
                   "Fig. 9: each tool-using pair alone, caching on and off; prefill latency = Σ time to first token. "
                   "Fig. 12: ReAct under Poisson load at the paper's operating points; KV in GB = share of the "
                   "replica's KV pool in use × its capacity × 128 KiB per token (Llama-3.1-8B).",
                   rows, [fig9.name, fig12.name], "Per design point (simulated):\n\n" + table,
                   data={"per_design_point": eff, "kv_gb": {b: {str(k): v for k, v in d.items()} for b, d in kv.items()}})
