"""The paper's numbers: the only place they live (the report's "paper" column reads this table).

Kim, Shin, Chung, Rhu, "The Cost of Dynamic Reasoning", HPCA 2026 (arXiv 2506.04301), as collected
in ``docs/paper.md``. Each entry names the section of docs/paper.md it comes from and its
evidence tag there: [Q] quoted from the text, [F] read from a figure's text, [S] a secondary visual
reading (approximate), [I] arithmetic on quoted values.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperValue:
    value: float
    unit: str
    source: str    # docs/paper.md section and evidence tag


def _v(value: float, unit: str, source: str) -> PaperValue:
    return PaperValue(value, unit, source)


PAPER: dict[str, PaperValue] = {
    # --- Fig. 4: LLM calls per request (8B, one request at a time) -----------------------------------
    "fig4.cot_llm_calls": _v(1.0, "calls", "§2.1 [Q] CoT performs only a single LLM inference per request"),
    "fig4.lats_llm_calls": _v(71.0, "calls", "§2.1 [Q] LATS: an average of 71.0 LLM calls per request"),
    "fig4.lats_hotpotqa_llm_calls": _v(60.0, "calls", "§2.1 [S] LATS-HotpotQA bar reads 60+"),
    "fig4.lats_webshop_llm_calls": _v(180.0, "calls", "§2.1 [S] LATS-WebShop bar reads close to 180"),
    "fig4.tool_agents_vs_cot": _v(9.2, "x", "§2.1 [Q] tool-augmented agents average 9.2x the LLM calls of CoT"),
    "fig4.math_axis_max": _v(36.0, "calls", "§2.1 [F] Fig. 4 MATH axis tops at 36 invocations"),
    "fig4.humaneval_axis_max": _v(8.0, "calls", "§2.1 [F] Fig. 4 HumanEval axis tops at 8 invocations"),
    # --- Figs. 5-7: single-request latency and GPU time ----------------------------------------------
    "fig5.llm_share": _v(0.694, "share", "§2.2 [Q] LLM inference 69.4 % of end-to-end latency (average)"),
    "fig5.tool_share": _v(0.302, "share", "§2.2 [Q] tool execution 30.2 % of end-to-end latency (average)"),
    "fig6.idle_max": _v(0.545, "share", "§2.3 [Q] GPU idle up to 54.5 % of execution time (HotpotQA, MATH)"),
    "fig6.prefill_share": _v(0.047, "share", "§2.3 [Q] prefill 4.7 % of the GPU's execution time"),
    "fig6.decode_share": _v(0.741, "share", "§2.3 [Q] decode 74.1 % of the GPU's execution time"),
    "fig7.sharegpt_p95_s": _v(9.7, "s", "§2.2 [Q]/[F] ShareGPT single-request p95 9.7 s"),
    "fig7.react_hotpotqa_p95_s": _v(20.7, "s", "§2.2 [F] Fig. 7 ReAct-HotpotQA p95 20.7 s"),
    "fig7.react_webshop_p95_s": _v(50.8, "s", "§2.2 [F] Fig. 7 ReAct-WebShop p95 50.8 s"),
    "sec4c.react_hotpotqa_mean_s": _v(9.6, "s", "§2.2 [Q] ReAct-HotpotQA sequential mean latency 9.6 s"),
    "sec4c.react_webshop_mean_s": _v(5.3, "s", "§2.2 [Q] ReAct-WebShop sequential mean latency 5.3 s"),
    "table3.sharegpt_8b_latency_s": _v(4.23, "s", "§2.9 [Q] Table III ShareGPT 8B latency 4.23 s"),
    # --- Figs. 9, 12: prefix caching ----------------------------------------------------------------
    "fig9.prefill_reduction": _v(0.601, "share", "§2.5 [Q] prefill latency reduced by an average of 60.1 %"),
    "fig9.llm_latency_reduction": _v(0.157, "share", "§2.5 [Q] LLM inference latency: average 15.7 % reduction"),
    "fig12.lats_kv_saving": _v(0.648, "share", "§2.5 [Q] LATS KV memory saving within one request: 64.8 %"),
    "fig12.kv_avg_reduction": _v(0.517, "share", "§2.5 [Q] serving KV memory, average: -51.7 % with caching"),
    "fig12.kv_max_reduction": _v(0.635, "share", "§2.5 [Q] serving KV memory, max: -63.5 % with caching"),
    "fig12.hotpotqa_kv_avg_gb_off": _v(0.55, "GB", "§2.5 [S] Fig. 12 HotpotQA average KV, caching off"),
    "fig12.hotpotqa_kv_avg_gb_on": _v(0.27, "GB", "§2.5 [S] Fig. 12 HotpotQA average KV, caching on"),
    "fig12.webshop_kv_avg_gb_off": _v(0.6, "GB", "§2.5 [S] Fig. 12 WebShop average KV, caching off"),
    "fig12.webshop_kv_avg_gb_on": _v(0.27, "GB", "§2.5 [S] Fig. 12 WebShop average KV, caching on"),
    "fig12.hotpotqa_kv_max_gb_off": _v(2.5, "GB", "§2.5 [S] Fig. 12 HotpotQA max KV, caching off"),
    "fig12.hotpotqa_kv_max_gb_on": _v(0.9, "GB", "§2.5 [S] Fig. 12 HotpotQA max KV, caching on"),
    "fig12.webshop_kv_max_gb_off": _v(3.0, "GB", "§2.5 [S] Fig. 12 WebShop max KV, caching off"),
    "fig12.webshop_kv_max_gb_on": _v(1.2, "GB", "§2.5 [S] Fig. 12 WebShop max KV, caching on"),
    "fig12.hotpotqa_qps": _v(0.2, "QPS", "§2.5 [Q] Fig. 12 operating point, ReAct-HotpotQA"),
    "fig12.webshop_qps": _v(0.1, "QPS", "§2.5 [Q] Fig. 12 operating point, ReAct-WebShop"),
    "fig11.pc_gain_sharegpt": _v(1.03, "x", "§2.5 [Q] prefix caching throughput gain, ShareGPT 1.03x"),
    "fig11.pc_gain_react": _v(5.62, "x", "§2.5 [Q] prefix caching throughput gain, ReAct average 5.62x"),
    # --- Fig. 11: peak throughput under Poisson load (8B, one A100) ----------------------------------
    "fig11.sharegpt_peak_qps": _v(6.4, "QPS", "§2.6 [Q] ShareGPT sustains up to 6.4 QPS"),
    "fig11.react_hotpotqa_peak_qps": _v(2.6, "QPS", "§2.6 [Q] ReAct-HotpotQA concurrent peak 2.6 QPS"),
    "fig11.react_webshop_peak_qps": _v(1.2, "QPS", "§2.6 [Q] ReAct-WebShop concurrent peak 1.2 QPS"),
    "fig11.react_hotpotqa_seq_qps": _v(0.10, "QPS", "§2.6 [Q] ReAct-HotpotQA one request at a time 0.10 QPS"),
    "fig11.react_webshop_seq_qps": _v(0.19, "QPS", "§2.6 [Q] ReAct-WebShop one request at a time 0.19 QPS"),
    "fig11.react_latency_increase": _v(2.1, "x", "§2.6 [Q] concurrency gains cost a 2.1x increase in mean latency"),
    "fig11.react_hotpotqa_concurrency_gain": _v(25.0, "x", "§2.6 [Q] ReAct-HotpotQA: 25x the throughput of one at a time"),
    "fig11.react_webshop_concurrency_gain": _v(6.2, "x", "§2.6 [Q] ReAct-WebShop: 6.2x the throughput of one at a time"),
    # --- Figs. 14, 16: test-time scaling (HotpotQA) ---------------------------------------------------
    "fig16.reflexion_2_s": _v(16.9, "s", "§2.8 [Q] Reflexion 16.9 s (first Fig. 16(a) point, read as 2 reflections)"),
    "fig16.reflexion_4_s": _v(25.6, "s", "§2.8 [Q] Reflexion 25.6 s (second Fig. 16(a) point, read as 4)"),
    "fig16.lats_width_latency_drop_s": _v(196.3, "s", "§2.8 [Q] LATS 1 -> 16 children: latency -196.3 s"),
    "fig16.lats_width_accuracy_gain_pp": _v(14.4, "pp", "§2.8 [Q] LATS 1 -> 16 children: +14.4 pp accuracy"),
    # --- Table III: energy per query, one request at a time (HotpotQA) -------------------------------
    "table3.8b.sharegpt.latency_s": _v(4.23, "s", "§2.9 [Q] Table III"),
    "table3.8b.sharegpt.wh": _v(0.32, "Wh", "§2.9 [Q] Table III"),
    "table3.8b.reflexion.latency_s": _v(649.34, "s", "§2.9 [Q] Table III"),
    "table3.8b.reflexion.wh": _v(41.53, "Wh", "§2.9 [Q] Table III"),
    "table3.8b.reflexion.accuracy": _v(0.38, "share", "§2.9 [Q] Table III"),
    "table3.8b.lats.latency_s": _v(380.90, "s", "§2.9 [Q] Table III"),
    "table3.8b.lats.wh": _v(22.76, "Wh", "§2.9 [Q] Table III"),
    "table3.8b.lats.accuracy": _v(0.80, "share", "§2.9 [Q] Table III"),
    "table3.70b.sharegpt.latency_s": _v(6.40, "s", "§2.9 [Q] Table III"),
    "table3.70b.sharegpt.wh": _v(2.55, "Wh", "§2.9 [Q] Table III"),
    "table3.70b.reflexion.latency_s": _v(720.00, "s", "§2.9 [Q] Table III"),
    "table3.70b.reflexion.wh": _v(348.41, "Wh", "§2.9 [Q] Table III"),
    "table3.70b.reflexion.accuracy": _v(0.67, "share", "§2.9 [Q] Table III"),
    "table3.70b.lats.latency_s": _v(305.67, "s", "§2.9 [Q] Table III"),
    "table3.70b.lats.wh": _v(158.48, "Wh", "§2.9 [Q] Table III"),
    "table3.70b.lats.accuracy": _v(0.82, "share", "§2.9 [Q] Table III"),
    # --- Table IV: datacenter power, P = Wh/query x queries/day / 24 h --------------------------------
    "table4.queries_low": _v(71.4e6, "queries/day", "§2.10 [Q] 500 M weekly ChatGPT users / 7, one query each"),
    "table4.queries_high": _v(13.7e9, "queries/day", "§2.10 [Q] Google Search volume per day"),
    "table4.8b.sharegpt.low_w": _v(1.0e6, "W", "§2.10 [Q] Table IV 1.0 MW"),
    "table4.8b.sharegpt.high_w": _v(182.7e6, "W", "§2.10 [Q] Table IV 182.7 MW"),
    "table4.8b.reflexion.low_w": _v(123.6e6, "W", "§2.10 [Q] Table IV 123.6 MW"),
    "table4.8b.reflexion.high_w": _v(23.7e9, "W", "§2.10 [Q] Table IV 23.7 GW"),
    "table4.8b.lats.low_w": _v(67.7e6, "W", "§2.10 [Q] Table IV 67.7 MW"),
    "table4.8b.lats.high_w": _v(13.0e9, "W", "§2.10 [Q] Table IV 13.0 GW"),
    "table4.70b.sharegpt.low_w": _v(7.6e6, "W", "§2.10 [Q] Table IV 7.6 MW"),
    "table4.70b.sharegpt.high_w": _v(1.5e9, "W", "§2.10 [Q] Table IV 1.5 GW"),
    "table4.70b.reflexion.low_w": _v(1.0e9, "W", "§2.10 [Q] Table IV 1.0 GW"),
    "table4.70b.reflexion.high_w": _v(198.9e9, "W", "§2.10 [Q] Table IV 198.9 GW"),
    "table4.70b.lats.low_w": _v(471.5e6, "W", "§2.10 [Q] Table IV 471.5 MW"),
    "table4.70b.lats.high_w": _v(90.5e9, "W", "§2.10 [Q] Table IV 90.5 GW"),
}


def paper(key: str) -> float:
    return PAPER[key].value


def paper_avg_gpu_w(model: str, workload: str) -> float:
    """Average power of all the model's GPUs over one query served alone, Wh × 3600 / latency
    (docs/paper.md §2.9 [I])."""
    return paper(f"table3.{model}.{workload}.wh") * 3600.0 / paper(f"table3.{model}.{workload}.latency_s")
