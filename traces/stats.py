"""Workload statistics of a stream of sessions, computed without the simulator.

``workload_stats(sessions)`` returns a plain dict (JSON-ready):

* ``sessions``; LLM calls, tool calls, LLM work (prompt + output tokens) per session;
  input (prompt) and output tokens per LLM call — each as mean / p50 / p95 (and max);
* ``context_growth``: per session with at least two LLM calls, the last call's prompt tokens over
  the first call's (paper §2.4: 3–4× on HotpotQA) — mean / p50 / p95;
* ``tool_time_share``: Σ tool latency / (Σ tool latency + LLM time) over all sessions, where LLM
  time is a stated per-token model, *not* a simulation: ``s_per_output_token`` per output token +
  ``s_per_prompt_token`` per prompt token not already cached earlier in the same session (prefix
  caching, segment granularity). Tool latencies are summed, so parallel tools (LATS, LLMCompiler)
  count fully, as they would in GPU-idle time of a lone request only if they did not overlap;
* ``prefix_reuse``: fraction of all prompt tokens whose ``block_size``-token block was seen before,
  in arrival order, with an unbounded prefix cache shared by every session: blocks are the chained
  content hashes of ``agentwatt.sim.kv.block_hashes`` (what the simulator's prefix cache uses);
  a call's prompt *and* output blocks are entered after the call;
* ``arrivals`` (when sessions have distinct arrival times): span, rate, interarrival CV;
* ``single_request_latency_s`` (when a profile latency model is passed): mean / p50 / p95 of
  ``estimate.single_request_latency_s``.

``format_stats`` renders the dict as a fixed-width table.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

import numpy as np

from agentwatt.core.profile import LatencyModel
from agentwatt.traces.blocks import block_hashes
from agentwatt.traces.estimate import cached_prefix_tokens, prefix_chain, single_request_latency_s
from agentwatt.traces.schema import LLMCall, Session

S_PER_OUTPUT_TOKEN = 0.01241  # [I] bundled profile llama-3.1-8b_a100-40gb: one decode step of a lone request,
#   overhead_s 0.012259 + decode_seq_s 0.000151 (context term ~0.1 ms per 1k tokens left out)
S_PER_PROMPT_TOKEN = 0.000151  # [I] same profile: prefill_token_s (attention term left out)
BLOCK_SIZE = 16  # vLLM's default KV block size (sim/scenario.py EngineConfig.block_size_tokens)


def _summary(values: Iterable[float]) -> dict[str, float]:
    a = np.asarray(list(values), dtype=float)
    if a.size == 0:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "max": None}
    return {"n": int(a.size), "mean": float(a.mean()), "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)), "max": float(a.max())}


def workload_stats(sessions: Iterable[Session], *, s_per_output_token: float = S_PER_OUTPUT_TOKEN,
                   s_per_prompt_token: float = S_PER_PROMPT_TOKEN, block_size: int = BLOCK_SIZE,
                   latency_model: Optional[LatencyModel] = None, prefix_reuse: bool = True) -> dict[str, Any]:
    """Statistics of ``sessions`` (consumed once, in order); see the module notes for each entry.

    ``prefix_reuse=False`` skips the block hashing (the slowest part: one hash per 16 tokens of every
    prompt) and reports ``prefix_reuse`` as ``None``.
    """
    n_sessions = 0
    llm_per, tool_per, work_per, growth, lat = [], [], [], [], []
    prompt_tok, output_tok, arrivals = [], [], []
    agents: dict[str, int] = {}
    tool_s = llm_s = 0.0
    reuse_seen: set[int] = set()
    reused_tokens = prompt_total = 0
    for s in sessions:
        n_sessions += 1
        agents[s.agent] = agents.get(s.agent, 0) + 1
        arrivals.append(s.arrival_s)
        calls = s.llm_calls
        llm_per.append(len(calls))
        tool_per.append(len(s.nodes) - len(calls))
        work_per.append(sum(c.prompt_tokens + c.output_tokens for c in calls))
        if len(calls) >= 2:
            growth.append(calls[-1].prompt_tokens / calls[0].prompt_tokens)
        session_seen: set[int] = set()
        for node in s.nodes:
            if not isinstance(node, LLMCall):
                tool_s += node.latency_s
                continue
            p = node.prompt_tokens
            prompt_tok.append(p)
            output_tok.append(node.output_tokens)
            new = p - cached_prefix_tokens(session_seen, node.prompt, 1)
            session_seen.update(h for h, _ in prefix_chain((*node.prompt, node.output_segment)))
            llm_s += s_per_output_token * node.output_tokens + s_per_prompt_token * new
            prompt_total += p
            if prefix_reuse:  # the prompt's full blocks are the leading hashes of prompt + output
                hashes = block_hashes((*node.prompt, node.output_segment), block_size)
                reused_tokens += block_size * sum(1 for h in hashes[:p // block_size] if h in reuse_seen)
                reuse_seen.update(hashes)
        if latency_model is not None:
            lat.append(single_request_latency_s(s, latency_model, block_size=block_size))
    out: dict[str, Any] = {
        "sessions": n_sessions,
        "agents": dict(sorted(agents.items())),
        "llm_calls_per_session": _summary(llm_per),
        "tool_calls_per_session": _summary(tool_per),
        "llm_work_tokens_per_session": _summary(work_per),
        "input_tokens_per_call": _summary(prompt_tok),
        "output_tokens_per_call": _summary(output_tok),
        "context_growth": _summary(growth),
        "tool_time_share": (tool_s / (tool_s + llm_s)) if tool_s + llm_s > 0 else None,
        "tool_time_share_model": {"s_per_output_token": s_per_output_token, "s_per_prompt_token": s_per_prompt_token,
                                  "note": "tool latency sum / (tool sum + per-token LLM time); not simulated"},
        "prefix_reuse": (reused_tokens / prompt_total) if prompt_total and prefix_reuse else None,
        "prefix_reuse_block_tokens": block_size,
    }
    if n_sessions >= 2 and max(arrivals) > min(arrivals):
        t = np.sort(np.asarray(arrivals, dtype=float))
        gaps = np.diff(t)
        span = float(t[-1] - t[0])
        out["arrivals"] = {"span_s": span, "rate_per_s": (len(t) - 1) / span,
                           "interarrival_cv": float(gaps.std() / gaps.mean())}
    if latency_model is not None:
        out["single_request_latency_s"] = _summary(lat)
    return out


_ROWS = (
    ("llm_calls_per_session", "LLM calls / session"),
    ("tool_calls_per_session", "tool calls / session"),
    ("llm_work_tokens_per_session", "LLM work tokens / session"),
    ("input_tokens_per_call", "input tokens / call"),
    ("output_tokens_per_call", "output tokens / call"),
    ("context_growth", "context growth (last/first)"),
    ("single_request_latency_s", "single-request latency s"),
)


def _num(v: Optional[float]) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def format_stats(stats: dict[str, Any], title: str = "") -> str:
    """A fixed-width table of ``workload_stats`` output."""
    lines = []
    if title:
        lines.append(title)
    agents = ", ".join(f"{k} ({v})" for k, v in stats["agents"].items())
    lines.append(f"sessions: {stats['sessions']}  [{agents}]")
    lines.append(f"{'metric':<30}{'mean':>12}{'p50':>12}{'p95':>12}{'max':>12}")
    for key, label in _ROWS:
        d = stats.get(key)
        if d is None:
            continue
        lines.append(f"{label:<30}" + "".join(f"{_num(d[k]):>12}" for k in ("mean", "p50", "p95", "max")))
    m = stats["tool_time_share_model"]
    share = stats["tool_time_share"]
    lines.append(f"tool time share: {'n/a' if share is None else f'{100 * share:.1f} %'} "
                 f"(tool sum / (tool sum + {m['s_per_output_token'] * 1e3:.2f} ms per output token + "
                 f"{m['s_per_prompt_token'] * 1e3:.3f} ms per uncached prompt token); not simulated")
    reuse = stats["prefix_reuse"]
    if reuse is None:
        lines.append("prefix reuse potential: not computed")
    else:
        lines.append(f"prefix reuse potential: {100 * reuse:.1f} % of prompt tokens were seen before "
                     f"(unbounded cache, {stats['prefix_reuse_block_tokens']}-token blocks)")
    if "arrivals" in stats:
        a = stats["arrivals"]
        lines.append(f"arrivals: {a['rate_per_s']:.3g} /s over {a['span_s']:.1f} s, interarrival CV "
                     f"{a['interarrival_cv']:.2f}")
    return "\n".join(lines)
