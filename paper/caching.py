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
from agentwatt.paper.runs import Lab
from agentwatt.paper.settings import DESIGN_POINTS, Settings
from agentwatt.paper.values import paper

TOL = 0.25


def _alone_cache_effect(lab: Lab, agent: str, n: int) -> dict[str, float]:
    out = {}
    for pc in (True, False):
        res = lab.alone(agent, n, prefix_caching=pc)
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


def _kv_gb(lab: Lab, agent: str, rate: float, duration_s: float) -> dict[bool, dict[str, float]]:
    out = {}
    for pc in (True, False):
        res = lab.poisson(agent, rate, duration_s, prefix_caching=pc)
        s = res.summary
        gb = s["kv_capacity_tokens_per_replica"] * res.profile.model.kv_bytes_per_token / 1e9
        out[pc] = {"avg": s["kv_mean_utilization"] * gb, "max": s["kv_peak_utilization"] * gb}
    return out


def section(lab: Lab, st: Settings, out_dir) -> Section:
    agents = [a for a in DESIGN_POINTS if not a.startswith("cot-")]
    eff = {a: _alone_cache_effect(lab, a, st.design_sessions) for a in agents}
    lats = [a for a in agents if a.startswith("lats-")]
    kv = {"hotpotqa": _kv_gb(lab, "react-hotpotqa", paper("fig12.hotpotqa_qps"), st.kv_duration_s),
          "webshop": _kv_gb(lab, "react-webshop", paper("fig12.webshop_qps"), st.kv_duration_s)}
    red = {m: float(np.mean([1 - kv[b][True][m] / kv[b][False][m] for b in kv])) for m in ("avg", "max")}
    rows = [
        Row("prefill latency saved by prefix caching (agents alone)",
            float(np.mean([e["prefill_latency"] for e in eff.values()])), "fig9.prefill_reduction", "share", TOL,
            main=True, note="each call re-reads a prompt that mostly repeats the previous call's; the cache skips it"),
        Row("LLM call latency saved by prefix caching", float(np.mean([e["call_latency"] for e in eff.values()])),
            "fig9.llm_latency_reduction", "share", TOL, main=True,
            note="smaller than the prefill saving: writing the answer (decode) is not cached",
            why="in our profile, prefilling a few-thousand-token prompt is a larger part of a call than decoding its "
                "short answer, so skipping it saves more of the call"),
        Row("LATS peak KV memory saved within one request", float(np.mean([eff[a]["kv_peak"] for a in lats])),
            "fig12.lats_kv_saving", "share", TOL,
            note="LATS's parallel branches share their prompt prefix, so the cache stores it once"),
        Row("average KV memory saved, ReAct at low load", red["avg"], "fig12.kv_avg_reduction", "share", TOL,
            main=True, note="mean of HotpotQA (0.2/s) and WebShop (0.1/s); shared instructions are stored once"),
        Row("peak KV memory saved, ReAct at low load", red["max"], "fig12.kv_max_reduction", "share", TOL,
            main=True, note="the peak is set by the few longest contexts in flight together"),
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
