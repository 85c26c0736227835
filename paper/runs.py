"""The runs behind the report: scenarios in the paper's two modes, memoised, plus table helpers.

* **alone**: one request at a time (closed loop, one user, one replica), the paper's measurement
  mode for Figs. 4–9, 14, 16 and Table III;
* **poisson**: sessions arrive as a Poisson process on one replica (Figs. 11, 12);
* **batched**: ``concurrency`` users back to back on one replica (Table IV's simulated projection).

Every run is the ordinary serial ``agentwatt.sim.run.run``; a ``Lab`` keeps each result so that
sections sharing a setup (Fig. 4 and Figs. 5–7) simulate it once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from agentwatt.sim.run import Results, run
from agentwatt.sim.scenario import Scenario, scenario_from_dict

PROFILES = {"8b": "llama-3.1-8b_a100-40gb", "70b": "llama-3.1-70b_8xa100-40gb"}
FOREVER_S = 1e9

# The paper's server is vLLM 0.6.6 (docs/paper.md §1.3 [Q]); it states none of the engine settings, so
# these are vLLM 0.6.6's defaults for Llama-3.1-8B served by the OpenAI-compatible server where they
# differ from ``sim.scenario.EngineConfig``'s: the model's max_model_len is 131,072 > 32K, which turns
# chunked prefill on by default (vllm-project/vllm#6666, kept on with prefix caching by #8342), and
# the V0 engine's default step budget with chunked prefill is 512 tokens (vLLM docs,
# performance.rst: "512 is the default max_num_batched_tokens for chunked prefill"; the 2048-token
# OpenAI-server budget came with the V1 engine, #11061). max_num_seqs 256, block size 16 and
# gpu_memory_utilization 0.9 are already EngineConfig's defaults.
VLLM_066 = {"max_num_batched_tokens": 512}


@dataclass
class Lab:
    seed: int = 1
    runs: dict[str, Results] = field(default_factory=dict)
    profiles: dict[str, Any] = field(default_factory=dict)
    sim_wall_s: float = 0.0
    wall_by_run: dict[str, float] = field(default_factory=dict)

    def profile(self, name: str):
        if name not in self.profiles:
            from agentwatt.core.profile import load_profile
            self.profiles[name] = load_profile(name)
        return self.profiles[name]

    def run(self, data: dict[str, Any]) -> Results:
        key = repr(sorted(_flat(data).items()))
        if key not in self.runs:
            t0 = time.perf_counter()
            sc: Scenario = scenario_from_dict(data, where=f"paper: {data['name']}")
            self.runs[key] = run(sc, self.profile(sc.profile))
            dt = time.perf_counter() - t0
            self.sim_wall_s += dt
            self.wall_by_run[f"{sc.name} [{sc.profile}, caching {'on' if sc.engine.prefix_caching else 'off'}]"] = dt
        return self.runs[key]

    def alone(self, agent: str, sessions: int, *, model: str = "8b", knobs: dict | None = None,
              prefix_caching: bool = True, seed: int | None = None, engine: dict | None = None) -> Results:
        wl = {"agent": agent, "arrival": "closed", "concurrency": 1, "sessions": sessions, "knobs": knobs or {}}
        return self.run(_scenario(f"{agent} alone", wl, model, self.seed if seed is None else seed, FOREVER_S,
                                  FOREVER_S, prefix_caching, engine))

    def poisson(self, agent: str, rate_per_s: float, duration_s: float, *, prefix_caching: bool = True,
                drain_s: float = 600.0, engine: dict | None = None, seed: int | None = None,
                model: str = "8b", knobs: dict | None = None) -> Results:
        wl = {"agent": agent, "rate_per_s": rate_per_s, **({"knobs": knobs} if knobs else {})}
        return self.run(_scenario(f"{agent} at {rate_per_s:g}/s", wl, model, self.seed if seed is None else seed,
                                  duration_s, drain_s, prefix_caching, engine))

    def variant(self, model: str, **latency_scale: float) -> str:
        """Register a copy of ``model``'s profile with latency terms scaled (``decode_ctx_s=0.5``) for a
        one-factor probe; returns its name for ``model=`` (the scaled terms are in the name)."""
        import dataclasses
        base = PROFILES.get(model, model)
        name = base + "~" + ",".join(f"{k}x{v:g}" for k, v in sorted(latency_scale.items()))
        if name not in self.profiles:
            p = self.profile(base)
            lat = dataclasses.replace(p.latency, **{k: getattr(p.latency, k) * v for k, v in latency_scale.items()})
            self.profiles[name] = dataclasses.replace(p, latency=lat)
        return name

    def batched(self, agent: str, concurrency: int, sessions: int, *, model: str = "8b",
                knobs: dict | None = None, seed: int | None = None) -> Results:
        wl = {"agent": agent, "arrival": "closed", "concurrency": concurrency, "sessions": sessions,
              "knobs": knobs or {}}
        return self.run(_scenario(f"{agent} x{concurrency}", wl, model, self.seed if seed is None else seed,
                                  FOREVER_S, FOREVER_S, True))


def _scenario(name: str, workload: dict, model: str, seed: int, duration_s: float, drain_s: float,
              prefix_caching: bool, engine: dict | None = None) -> dict[str, Any]:
    """One run's scenario; ``engine`` adds ``[engine]`` settings (e.g. ``VLLM_066``) to the defaults."""
    return {"name": name, "profile": PROFILES.get(model, model),
            "run": {"seed": seed, "duration_s": duration_s, "drain_timeout_s": drain_s},
            "engine": {**(engine or {}), "prefix_caching": prefix_caching}, "workload": [workload]}


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    if isinstance(d, list):
        out = {}
        for i, v in enumerate(d):
            out.update(_flat(v, f"{prefix}{i}."))
        return out
    return {prefix: d}


# ------------------------------------------------------------------------------ table helpers

def finished(sessions: pd.DataFrame) -> pd.DataFrame:
    s = sessions[sessions["status"] == "finished"].copy()
    s["e2e_s"] = s["finish_s"] - s["arrival_s"]
    return s


def e2e(res: Results) -> np.ndarray:
    return finished(res.sessions)["e2e_s"].to_numpy()


def pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else float("nan")


def union_s(starts: np.ndarray, ends: np.ndarray) -> float:
    """Length of the union of the intervals [start, end)."""
    if len(starts) == 0:
        return 0.0
    order = np.argsort(starts)
    total, cur_s, cur_e = 0.0, float(starts[order[0]]), float(ends[order[0]])
    for i in order[1:]:
        s, e = float(starts[i]), float(ends[i])
        if s > cur_e:
            total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + cur_e - cur_s


def closed_loop_sessions(agent: str, knobs: dict, n: int, seed: int) -> list:
    """The first ``n`` sessions a one-class closed-loop run with ``seed`` draws, regenerated.

    ``sim.workload.closed_loop`` draws a class's sessions in order from
    ``default_rng(SeedSequence(seed).spawn(classes)[i])``; with one agent and no mix, nothing else
    draws from that stream, so session k here is the run's session k. Callers check this (the
    LLM call counts must match the run's sessions table) before relying on it.
    """
    from agentwatt.traces.agents import make_agent
    gen = make_agent(agent, **knobs)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    return [gen.session(rng, i, 0.0) for i in range(n)]


def tool_like_calls(res: Results, agent: str, knobs: dict, seed: int) -> set[tuple[int, int]]:
    """(session, node) of the LLM calls that do a tool's job: HumanEval's test writing (docs/paper.md
    §1.2: the test-generation tool runs the LLM). Empty if the run's sessions cannot be matched."""
    s = res.sessions.sort_values("session_id")
    regen = closed_loop_sessions(agent, knobs, len(s), seed)
    if [len(x.llm_calls) for x in regen] != s["n_llm_calls"].tolist():
        return set()
    return {(sid, c.id) for sid, x in zip(s["session_id"], regen) for c in x.llm_calls
            if c.prompt[0].key.endswith(":testgen")}


def time_split(res: Results, tool_like: set[tuple[int, int]] = frozenset()) -> dict[str, float]:
    """Shares of one request's time, for a run served one request at a time.

    ``llm``/``tool``: per session, the time any of its LLM calls is in flight (union of
    [submit, finish)) over its end-to-end latency, averaged over sessions; the rest is tool time
    (LLM work overlapping a tool counts as LLM; calls in ``tool_like`` count as tool time, as the
    paper counts HumanEval's test writing). ``prefill``/``decode``/``idle``: shares of the
    replica's time; prefill is the union of [submit, first token) of all calls, decode the rest of
    the busy time, idle the time the GPU waited on tools (``gpu_time_split``).
    """
    calls = res.calls[res.calls["status"] == "finished"]
    s = finished(res.sessions).set_index("session_id")
    keep = [(a, b) not in tool_like for a, b in zip(calls["session_id"], calls["node_id"])]
    llm = pd.Series({sid: union_s(g["submit_s"].to_numpy(), g["finish_s"].to_numpy())
                     for sid, g in calls[keep].groupby("session_id")})
    llm_share = float((llm / s["e2e_s"].reindex(llm.index)).mean())
    split = res.summary["gpu_time_split"]
    tp = res.profile.hardware.tp
    total = (split["busy_s"] + split["idle_tool_s"] + split["idle_empty_s"]) / tp
    prefill = union_s(calls["submit_s"].to_numpy(), calls["first_token_s"].to_numpy())
    busy = split["busy_s"] / tp
    return {"llm": llm_share, "tool": 1.0 - llm_share, "prefill": prefill / total,
            "decode": max(busy - prefill, 0.0) / total, "idle": split["idle_tool_s"] / tp / total}


def wh_per_query(res: Results) -> float:
    """GPU energy per completed session, idle time during tools included (Table III's measure)."""
    s = res.summary
    return s["gpu_energy_j"] / s["sessions_completed"] / 3600.0


def call_time_split(res: Results, agent: str, knobs: dict, seed: int,
                    tool_like: set[tuple[int, int]] = frozenset()) -> float | None:
    """Tool share of a request's time from per-call timers, the way the authors' harness keeps them
    (docs/paper.md §5: the Wikipedia tool "times each call into ``all_times``"; each LLM call is timed
    by its client): per session, Σ tool-call latencies ÷ (Σ tool-call latencies + Σ LLM-call
    latencies), averaged over sessions. Parallel calls (LATS children, LLMCompiler's DAG) each count
    in full, so LLM work that overlaps a tool no longer hides the tool. Calls in ``tool_like`` count
    as tool time. Tool latencies come from the run's sessions regenerated (``closed_loop_sessions``);
    None if they cannot be matched to the run."""
    s = res.sessions.sort_values("session_id")
    regen = closed_loop_sessions(agent, knobs, len(s), seed)
    if [len(x.llm_calls) for x in regen] != s["n_llm_calls"].tolist():
        return None
    calls = res.calls[res.calls["status"] == "finished"]
    dur = dict(zip(zip(calls["session_id"], calls["node_id"]), calls["finish_s"] - calls["submit_s"]))
    done = set(finished(res.sessions)["session_id"])
    shares = []
    for sid, x in zip(s["session_id"], regen):
        if sid not in done:
            continue
        llm = sum(dur.get((sid, c.id), 0.0) for c in x.llm_calls if (sid, c.id) not in tool_like)
        tool = sum(t.latency_s for t in x.tool_calls) + sum(dur.get((sid, c.id), 0.0) for c in x.llm_calls
                                                          if (sid, c.id) in tool_like)
        if llm + tool > 0:
            shares.append(tool / (llm + tool))
    return float(np.mean(shares)) if shares else None
