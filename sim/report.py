"""Statistics from the result tables: per call, per session, one counter row per replica, the
session counters and the power series. Never from simulator internals."""
from __future__ import annotations

import math
import platform
from typing import Any

import numpy as np
import pandas as pd

from agentwatt.sim.metrics import RunCounts

PCTS = (50.0, 90.0, 95.0, 99.0, 99.9)   # the default of [run] percentiles


def pct_key(p: float) -> str:
    """A percentile's summary key: 50 → ``p50``, 99.9 → ``p99_9`` (no dot: summary keys are dotted paths)."""
    return "p" + f"{float(p):g}".replace(".", "_")


def pcts(x: pd.Series | np.ndarray, percentiles=PCTS) -> dict[str, float | None]:
    """Mean, the given percentiles (``pct_key`` names) and n of the finite values of ``x``."""
    a = np.asarray(x, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"mean": None, **{pct_key(p): None for p in percentiles}, "n": 0}
    out = {"mean": float(a.mean())}
    for p, v in zip(percentiles, np.percentile(a, percentiles)):
        out[pct_key(p)] = float(v)
    out["n"] = int(a.size)
    return out


def call_metrics(calls: pd.DataFrame) -> pd.DataFrame:
    """Add ``queue_s`` (submit to first admitted into a step), ``ttft_s``, ``tpot_s`` and ``e2e_s``
    columns (NaN where they do not apply)."""
    return with_call_columns(calls.copy())


CALL_METRIC_COLUMNS = ("queue_s", "ttft_s", "tpot_s", "e2e_s")


def with_call_columns(c: pd.DataFrame) -> pd.DataFrame:
    """``call_metrics``'s columns added to ``c`` in place (no copy of a multi-million-row table)."""
    if "start_s" in c:
        c["queue_s"] = c["start_s"] - c["submit_s"]
    c["ttft_s"] = c["first_token_s"] - c["submit_s"]
    c["e2e_s"] = c["finish_s"] - c["submit_s"]
    denom = (c["output_tokens"] - 1).where(c["output_tokens"] > 1)
    c["tpot_s"] = (c["finish_s"] - c["first_token_s"]) / denom
    return c


def session_metrics(sessions: pd.DataFrame) -> pd.DataFrame:
    s = sessions.copy()
    s["e2e_s"] = s["finish_s"] - s["arrival_s"]
    return s


def json_clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf → None, numpy scalars → Python, rounded to 9 significant digits."""
    if isinstance(obj, dict):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if not math.isfinite(f):
            return None
        return float(f"{f:.9g}")
    return obj


def summarize(scenario, profile, calls: pd.DataFrame, sessions: pd.DataFrame, replicas: pd.DataFrame,
              counts: RunCounts, power, t_end: float) -> dict[str, Any]:
    """The run's summary (``summary.json``) from its result tables: ``calls`` and ``sessions``
    (``metrics.CALL_COLUMNS``, ``SESSION_COLUMNS``), ``replicas`` (one counter row per replica in
    index order, ``Replica.counters()``), the session counters ``counts``, the facility power
    series ``power`` (``facility.FleetPower``; None without a power model) and the end time."""
    from agentwatt.core import __version__
    pc = scenario.run.percentiles
    # only the columns the summary reads (a 3 M-call table and its copies are ~0.4 GB each)
    cols = ["agent", "status", "submit_s", "first_token_s", "finish_s", "prompt_tokens", "output_tokens", "energy_j"]
    slim = calls[cols + (["start_s"] if "start_s" in calls else [])]
    c = call_metrics(slim) if len(slim) else slim.assign(queue_s=[], ttft_s=[], e2e_s=[], tpot_s=[])
    del slim
    s = session_metrics(sessions) if len(sessions) else sessions.assign(e2e_s=[])
    fin_c = c[c["status"] == "finished"] if len(c) else c
    fin_s = s[s["status"] == "finished"] if len(s) else s
    w0, w1, _ = steady_window(scenario.run.duration_s, fin_s, t_end)
    mw0, mw1 = (w0, w1) if scenario.run.steady_state else (0.0, t_end)
    lat_c, lat_s = fin_c, fin_s
    if scenario.run.steady_state:   # latencies of the calls and sessions that arrived inside the window
        lat_c = fin_c[(fin_c["submit_s"] >= w0) & (fin_c["submit_s"] <= w1)]
        lat_s = fin_s[(fin_s["arrival_s"] >= w0) & (fin_s["arrival_s"] <= w1)]
    n_rep = len(replicas)
    num_blocks = int(replicas["kv_blocks"].iloc[0])   # every replica has the same KV capacity
    busy = _total(replicas, "busy_s")
    kv_lookups = _total(replicas, "kv_lookup_blocks")
    kv_hits = _total(replicas, "kv_hit_blocks")
    out: dict[str, Any] = {
        "scenario": scenario.name,
        "scenario_source": scenario.source,
        "seed": scenario.run.seed,
        "sim_time_s": t_end,
        "arrivals_end_s": scenario.run.duration_s,
        "replicas": n_rep,
        "gpus": n_rep * profile.hardware.tp,
        "sessions_arrived": counts.sessions_arrived,
        "sessions_completed": counts.sessions_finished,
        "sessions_dropped": counts.sessions_dropped,
        "sessions_in_flight": counts.sessions_in_flight,
        "calls_submitted": counts.calls_submitted,
        "calls_completed": counts.calls_finished,
        "calls_dropped": counts.calls_dropped,
        "calls_in_flight": _total(replicas, "outstanding"),
        "percentiles": list(pc),
        "metrics_window": _window_doc(scenario.run.steady_state, mw0, mw1),
        "queue_s": pcts(lat_c["queue_s"] if "queue_s" in lat_c else [], pc),
        "ttft_s": pcts(lat_c["ttft_s"] if len(lat_c) else [], pc),
        "tpot_s": pcts(lat_c["tpot_s"] if len(lat_c) else [], pc),
        "call_e2e_s": pcts(lat_c["e2e_s"] if len(lat_c) else [], pc),
        "session_e2e_s": pcts(lat_s["e2e_s"] if len(lat_s) else [], pc),
        "throughput": throughput(fin_c, fin_s, mw0, mw1, n_rep * profile.hardware.tp),
        "gpu_utilization": busy / (n_rep * t_end) if t_end > 0 else None,
        "steps": _total(replicas, "steps"),
        "step_events": _total(replicas, "events"),
        "prefill_tokens_computed": _total(replicas, "prefill_tokens"),
        "decode_tokens": _total(replicas, "decode_tokens"),
        "prompt_tokens": int(fin_c["prompt_tokens"].sum()) if len(fin_c) else 0,
        "output_tokens": int(fin_c["output_tokens"].sum()) if len(fin_c) else 0,
        "prefix_cache_hit_rate": (kv_hits / kv_lookups if kv_lookups and scenario.engine.prefix_caching
                                  else None),
        "preemptions": _total(replicas, "preemptions"),
        "kv_retention": scenario.engine.kv_retention,
        "kv_pins_dropped_for_memory": _total(replicas, "kv_pins_dropped_for_memory"),
        "kv_capacity_tokens_per_replica": num_blocks * scenario.engine.block_size_tokens,
        "kv_blocks_per_replica": num_blocks,
        "kv_peak_utilization": max(replicas["peak_kv_blocks"].tolist()) / num_blocks,
        "kv_mean_utilization": (_total(replicas, "kv_block_seconds") / (n_rep * num_blocks * t_end)
                                if t_end > 0 else None),
    }
    from agentwatt.sim.facility import server_warnings
    warnings = server_warnings(scenario.facility, profile)
    if profile.power.available and power is not None:
        out.update(_energy_block(scenario, profile, counts, replicas, fin_c, fin_s, power, t_end, warnings,
                                 (mw0, mw1)))
    else:
        out.update({"energy_available": False, "energy_unavailable_reason": profile.power.reason,
                    **{k: None for k in ("gpu_energy_j", "gpu_busy_energy_j", "gpu_idle_energy_j",
                                         "gpu_energy_per_session_j", "gpu_energy_per_session_with_idle_j",
                                         "gpu_energy_per_call_j", "gpu_avg_power_w", "gpu_peak_power_w",
                                         "gpu_energy_per_token_j", "gpu_energy_per_output_token_j",
                                         "facility_energy_j", "facility_avg_power_w", "facility_peak_power_w",
                                         "facility_energy_per_output_token_j")}})
    out["warnings"] = warnings
    out["by_agent"] = _by_agent(c, s, pc)
    out["profile"] = {"name": profile.name, "source": profile.source, "device": profile.hardware.device_name,
                      "tp": profile.hardware.tp, "model": profile.model.name,
                      "latency_fit": _fit_dict(profile.latency.fit), "provenance": profile.provenance}
    out["versions"] = {"agentwatt": __version__, "python": platform.python_version(),
                       "numpy": np.__version__, "pandas": pd.__version__, "simpy": _simpy_version()}
    return json_clean(out)


def _total(replicas: pd.DataFrame, column: str):
    """The sum of a counter over the replicas, added in index order as Python numbers (the order
    of float additions is fixed: summary.json does not change with the table's dtype or layout)."""
    return sum(replicas[column].tolist())


WARMUP_QUANTILE = 90         # the steady-state window starts after this percentile of session e2e ...
WARMUP_MAX_SHARE = 0.5       # ... or half-way through the arrival window, whichever is earlier
MIN_WINDOW_SESSIONS = 10     # fewer finished sessions in the window: no fleet figure per session, a warning


def steady_window(arrivals_end_s: float, fin_s: pd.DataFrame, t_end: float) -> tuple[float, float, int]:
    """(start, end, sessions) of the steady-state window for fleet energy per session.

    Rule: the window ends when arrivals end (never in the drain, whose idle fleet would be charged to
    the sessions) and starts once the fleet has filled: after the P90 end-to-end time of the finished
    sessions, at most half-way through the arrival window. ``sessions`` = finished sessions whose
    finish lies inside the window. Fleet energy over the window divided by it is the energy per session
    at the fleet's steady throughput: in steady state sessions finish at the rate they arrive, and the
    window's energy holds the parts of the sessions straddling its ends, which add up on average to
    what the finished sessions of the window used before it began. (Counting only sessions that both
    arrived and finished inside the window would undercount by their mean duration over the window's.)
    """
    end = min(arrivals_end_s, t_end)
    if not len(fin_s) or end <= 0:
        return 0.0, max(end, 0.0), 0
    start = min(float(np.percentile(fin_s["e2e_s"], WARMUP_QUANTILE)), WARMUP_MAX_SHARE * end)
    n = int(((fin_s["finish_s"] >= start) & (fin_s["finish_s"] <= end)).sum())
    return start, end, n


def _window_doc(steady: bool, start: float, end: float) -> dict[str, Any]:
    rule = ("steady state ([run] steady_state = true): latencies of the calls and sessions that arrived in "
            "[start_s, end_s], throughput and power over it (see steady_state_window's rule)"
            if steady else "the whole run: arrivals, then the drain ([run] steady_state = false)")
    return {"steady_state": steady, "start_s": start, "end_s": end, "rule": rule}


def throughput(fin_c: pd.DataFrame, fin_s: pd.DataFrame, start: float, end: float, gpus: int) -> dict[str, Any]:
    """Completions per second over [start, end]: finished sessions and calls whose finish lies inside,
    their output tokens and prompt + output tokens (vLLM benchmark_serving's request, output and total
    token throughput, divided by the window instead of the benchmark's duration)."""
    span = end - start
    if span <= 0:
        return {"window_s": span, **{k: None for k in ("sessions_per_s", "calls_per_s", "output_tokens_per_s",
                                                       "output_tokens_per_s_per_gpu", "total_tokens_per_s")}}
    cw = fin_c[(fin_c["finish_s"] >= start) & (fin_c["finish_s"] <= end)] if len(fin_c) else fin_c
    n_s = int(((fin_s["finish_s"] >= start) & (fin_s["finish_s"] <= end)).sum()) if len(fin_s) else 0
    out_tok = float(cw["output_tokens"].sum()) if len(cw) else 0.0
    all_tok = out_tok + (float(cw["prompt_tokens"].sum()) if len(cw) else 0.0)
    return {"window_s": span, "sessions_per_s": n_s / span, "calls_per_s": len(cw) / span,
            "output_tokens_per_s": out_tok / span, "output_tokens_per_s_per_gpu": out_tok / span / gpus,
            "total_tokens_per_s": all_tok / span}


def in_window(t: np.ndarray, width: np.ndarray, per_bin: np.ndarray, start: float, end: float) -> np.ndarray:
    """A per-bin quantity (bins start at ``t``) restricted to [start, end]: each bin times the share
    of it inside."""
    overlap = np.clip(np.minimum(t + width, end) - np.maximum(t, start), 0.0, None)
    return per_bin * overlap / width


def window_sum(t: np.ndarray, width: np.ndarray, per_bin: np.ndarray, start: float, end: float) -> float:
    return float(np.sum(in_window(t, width, per_bin, start, end)))


def _state_seconds(fp) -> dict[str, float]:
    span = float(np.sum(fp.width_s))
    out = {"busy": float(fp.busy_s.sum()), "idle": float(fp.idle_tool_s.sum() + fp.idle_empty_s.sum()),
           "parked": 0.0, "off": 0.0}
    if fp.spare_gpus:
        out[fp.spare_state] += fp.spare_gpus * span
    return out


def _energy_block(scenario, profile, counts: RunCounts, replicas: pd.DataFrame, fin_c, fin_s, fp,
                  t_end: float, warnings: list[str], metrics_window: tuple[float, float]) -> dict[str, Any]:
    from agentwatt.sim import facility as F
    res = scenario.run.power_resolution_s
    e_busy = _total(replicas, "busy_energy_j")
    e_idle = _total(replicas, "idle_energy_j")
    e_idle_tool = _total(replicas, "idle_tool_energy_j")
    e_spare = fp.spare_gpu_w * float(np.sum(fp.width_s))
    e = e_busy + e_idle
    w = fp.width_s
    host_j = float(np.sum(fp.host_w * w))
    net_j = float(np.sum(fp.network_w * w))
    fac_j = float(np.sum(fp.facility_w * w))
    per_session = (fin_s["energy_j"] + fin_s["idle_energy_j"]) if len(fin_s) else None
    w0, w1, n_win = steady_window(scenario.run.duration_s, fin_s, t_end)
    gpu_win_j = window_sum(fp.time_s, w, fp.gpu_w * w, w0, w1)
    fac_win_j = window_sum(fp.time_s, w, fp.facility_w * w, w0, w1)
    per_win = n_win if n_win >= MIN_WINDOW_SESSIONS else None
    if per_win is None:
        warnings.append(f"only {n_win} sessions finished in the steady-state window {w0:.0f}-{w1:.0f} s (fewer "
                        f"than {MIN_WINDOW_SESSIONS}): no fleet energy per session; run longer")
    gpus = len(replicas) * profile.hardware.tp
    m0, m1 = metrics_window
    whole = m0 <= 0.0 and m1 >= t_end
    span = m1 - m0
    # over the metrics window: the whole run, or the steady state ([run] steady_state)
    e_m = e if whole else window_sum(fp.time_s, w, fp.gpu_w * w, m0, m1) - fp.spare_gpu_w * span
    fac_m = fac_j if whole else window_sum(fp.time_s, w, fp.facility_w * w, m0, m1)
    inside = np.ones(len(w), dtype=bool) if whole else (fp.time_s >= m0) & (fp.time_s + w <= m1 + 1e-9)
    if not inside.any():
        inside[:] = True
    cw = fin_c if whole or not len(fin_c) else fin_c[(fin_c["finish_s"] >= m0) & (fin_c["finish_s"] <= m1)]
    out_tok = float(cw["output_tokens"].sum()) if len(cw) else 0.0
    all_tok = out_tok + (float(cw["prompt_tokens"].sum()) if len(cw) else 0.0)
    out = {
        "energy_available": True,
        "gpu_energy_j": e,
        "gpu_busy_energy_j": e_busy,
        "gpu_idle_energy_j": e_idle,
        "gpu_idle_tool_energy_j": e_idle_tool,
        "gpu_idle_empty_energy_j": e_idle - e_idle_tool,
        "gpu_spare_energy_j": e_spare,   # spare replicas (in gpu_energy_j's fleet series, not in gpu_energy_j)
        "gpu_energy_per_session_j": float(per_session.mean()) if per_session is not None else None,
        "gpu_busy_energy_per_session_j": float(fin_s["energy_j"].mean()) if len(fin_s) else None,
        "gpu_energy_per_session_with_idle_j": gpu_win_j / per_win if per_win else None,
        "gpu_energy_per_call_j": float(fin_c["energy_j"].mean()) if len(fin_c) else None,
        # GPU (facility) energy over the metrics window / tokens of the calls finished in it
        "gpu_energy_per_token_j": e_m / all_tok if all_tok else None,
        "gpu_energy_per_output_token_j": e_m / out_tok if out_tok else None,
        "facility_energy_per_output_token_j": fac_m / out_tok if out_tok else None,
        "gpu_avg_power_w": e_m / span if span > 0 else None,
        "gpu_peak_power_w": float(fp.gpu_w[inside].max()),
        "power_resolution_s": res,
        "host_energy_j": host_j,
        "network_energy_j": net_j,
        "facility_energy_j": fac_j,
        "facility_avg_power_w": fac_m / span if span > 0 else None,
        "facility_peak_power_w": float(fp.facility_w[inside].max()),
        "facility_energy_per_session_j": fac_win_j / per_win if per_win else None,
        "steady_state_window": {"start_s": w0, "end_s": w1, "sessions": n_win, "gpu_energy_j": gpu_win_j,
                                "facility_energy_j": fac_win_j,
                                "rule": "from the P90 session e2e (at most half-way) to the end of arrivals; "
                                        "sessions = finished sessions whose finish lies inside; "
                                        "*_with_idle and facility per-session figures = window energy / sessions "
                                        f"(none below {MIN_WINDOW_SESSIONS} sessions)"},
        "gpu_power": F.series_metrics(fp.time_s[inside], fp.gpu_w[inside], w[inside], res),
        "facility_power": F.series_metrics(fp.time_s[inside], fp.facility_w[inside], w[inside], res),
        "provisioning": F.provisioning(fp, scenario.facility, res),
        "gpu_time_split": {"busy_s": float(fp.busy_s.sum()), "idle_tool_s": float(fp.idle_tool_s.sum()),
                           "idle_empty_s": float(fp.idle_empty_s.sum())},
        # GPU-seconds per power state: serving GPUs are busy or idle with the model loaded; spares sit in one state
        "gpu_state_seconds": _state_seconds(fp),
    }
    warnings += F.nameplate_warnings(fp, scenario.facility, res)
    rows = F.rows_of(fp, scenario.facility)
    out["provisioning"]["rows"] = int(rows.shape[0])
    out["provisioning"]["row_it_peak_w"] = float(rows.max())
    cc = F.carbon_and_cost(fp.facility_w * w, fp.time_s, scenario.facility)
    if cc:   # per day: over the arrival window (not the drain); per session: over the steady-state window
        arr_end = min(scenario.run.duration_s, t_end)
        def share(a: float, b: float) -> dict:
            return F.carbon_and_cost(in_window(fp.time_s, w, fp.facility_w * w, a, b), fp.time_s, scenario.facility)
        per_day = 86400.0 / arr_end if arr_end > 0 else 0.0
        out["carbon_cost"] = {**cc, "per_day": {k: v * per_day for k, v in share(0.0, arr_end).items()},
                              **({"per_session": {k: v / per_win for k, v in share(w0, w1).items()}} if per_win else {})}
    if scenario.facility.gpu_hour_usd is not None:
        out.setdefault("carbon_cost", {})["gpu_cost_usd"] = scenario.facility.gpu_hour_usd * gpus * t_end / 3600
    return out


def _fit_dict(fit) -> dict | None:
    if fit is None:
        return None
    return {"mape": fit.mape, "max_ape": fit.max_ape, "holdout_mape": fit.holdout_mape, "n_points": fit.n_points}


def _simpy_version() -> str:
    import simpy
    return getattr(simpy, "__version__", "unknown")


def _by_agent(c: pd.DataFrame, s: pd.DataFrame, percentiles=PCTS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not len(s):
        return out
    for agent, g in s.groupby("agent", sort=True):
        fin = g[g["status"] == "finished"]
        cg = c[(c["agent"] == agent) & (c["status"] == "finished")]
        out[agent] = {
            "sessions_completed": int(len(fin)),
            "llm_calls_per_session": float(fin["n_llm_calls"].mean()) if len(fin) else None,
            "tool_calls_per_session": float(fin["n_tool_calls"].mean()) if len(fin) else None,
            "session_e2e_s": pcts(fin["e2e_s"], percentiles),
            "ttft_s": pcts(cg["ttft_s"], percentiles),
            "queue_s": pcts(cg["queue_s"] if "queue_s" in cg else [], percentiles),
            "gpu_energy_per_session_j": float((fin["energy_j"] + fin["idle_energy_j"]).mean()) if len(fin) else None,
            "tool_time_share": float((fin["tool_time_s"] / fin["e2e_s"]).mean()) if len(fin) else None,
        }
    return out


VLLM_METRICS = (("ttft", "ttft_s"), ("tpot", "tpot_s"), ("e2el", "e2e_s"))


def vllm_benchmark(calls: pd.DataFrame, summary: dict[str, Any]) -> dict[str, Any]:
    """The run in vLLM ``benchmark_serving --save-result`` field names (times in ms), so a simulated run
    sits beside a real benchmark: ``completed``, ``failed``, ``total_input_tokens``, ``total_output_tokens``,
    ``duration``, ``request_throughput``, ``output_throughput``, ``total_token_throughput`` and
    ``mean_/median_/std_/pNN_{ttft,tpot,e2el}_ms`` (vLLM's ``p99.9`` spelling). Calls = the LLM calls of
    the metrics window (``summary["metrics_window"]``); there is no per-token ITL in the simulator, so no
    ``*_itl_ms`` fields (each call's mean inter-token gap is its TPOT)."""
    win = summary["metrics_window"]
    c = calls if "ttft_s" in calls else call_metrics(calls)
    fin = c[c["status"] == "finished"]
    drop = c[c["status"] != "finished"]
    if win["steady_state"]:
        inside = (fin["submit_s"] >= win["start_s"]) & (fin["submit_s"] <= win["end_s"])
        fin, drop = fin[inside], drop[(drop["submit_s"] >= win["start_s"]) & (drop["submit_s"] <= win["end_s"])]
    duration = win["end_s"] - win["start_s"]
    tin, tout = int(fin["prompt_tokens"].sum()), int(fin["output_tokens"].sum())
    out: dict[str, Any] = {
        "backend": "agentwatt (simulated)", "model_id": summary["profile"]["model"],
        "duration": duration, "completed": int(len(fin)), "failed": int(len(drop)),
        "total_input_tokens": tin, "total_output_tokens": tout,
        "request_throughput": len(fin) / duration if duration > 0 else None,
        "output_throughput": tout / duration if duration > 0 else None,
        "total_token_throughput": (tin + tout) / duration if duration > 0 else None,
    }
    for name, col in VLLM_METRICS:
        a = fin[col].to_numpy(dtype=float) * 1e3
        a = a[np.isfinite(a)]
        out[f"mean_{name}_ms"] = float(a.mean()) if a.size else None
        out[f"median_{name}_ms"] = float(np.median(a)) if a.size else None
        out[f"std_{name}_ms"] = float(a.std()) if a.size else None
        for p in summary["percentiles"]:
            word = str(int(p)) if int(p) == p else str(p)
            out[f"p{word}_{name}_ms"] = float(np.percentile(a, p)) if a.size else None
    out["agentwatt"] = {"scenario": summary["scenario"], "seed": summary["seed"], "window": win,
                        "gpus": summary["gpus"], "gpu_energy_per_output_token_j": summary.get("gpu_energy_per_output_token_j")}
    return json_clean(out)
