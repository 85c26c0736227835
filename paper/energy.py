"""Table III (GPU energy per query, one request at a time) and Table IV (datacenter power).

Table III. HotpotQA, each query served alone on one replica (closed loop, one user): GPU energy
per query = the replica's GPU energy (busy + idle while tools run) ÷ sessions completed. 8B runs on
one A100-40GB, 70B on eight (TP8). The paper ran each agent at its highest-accuracy setting and
names the setting only by its accuracy and latency. Our generators spend less time per reflection
and per tree iteration than the paper's agents (Reflexion at the paper's largest sweep point, 32
reflections, takes ~150 s alone, not 649 s), so we identify each setting by the paper's numbers:
``solvable_fraction`` = the Table III accuracy, and the sequential-scaling knob (Reflexion's
``max_reflections``, and LATS's, also ``max_reflections``: Fig. 16(b)) is raised until the estimated single-request mean
latency (``traces.estimate``, no simulation, over ``knob_sessions`` sessions) is near Table
III's. A few never-solved sessions dominate a small sample's mean, so the sample is chosen too:
the first seed whose ``table3_sessions`` sessions have an estimated mean latency within 5 % of the
paper's (the estimate sees the very sessions the run will simulate). The simulated latency is then a
fit, not a check; the energy — which also depends on how the GPU's power splits between busy
steps and idle tool waits — is the prediction that is checked.

Table IV. The paper's formula P = Wh/query × queries/day ÷ 24 h on the paper's own Table III
numbers (exact), and beside it a simulated projection with the same idea as ``plan/project.py``:
serve the Table III setting batched (the most users per replica, back to back, from
``batched_users``, whose mean latency stays within 2.1× of alone: the latency price the paper
reports for its concurrency gains), take the facility energy per query (GPU + host power + PUE,
idle included, from that run) and the throughput per replica, and scale to the daily volume.
"""
from __future__ import annotations

import math

import numpy as np

from agentwatt.core.step import step_s
from agentwatt.sim.facility import paper_formula_power_w
from agentwatt.paper import figures
from agentwatt.paper.rows import Row, Section, fmt_power, md_table
from agentwatt.paper.runs import PROFILES, Lab, closed_loop_sessions, e2e, finished, pct, wh_per_query
from agentwatt.paper.values import PAPER, paper, paper_avg_gpu_w
from agentwatt.traces.agents import make_agent
from agentwatt.traces.estimate import single_request_latency_s

CASES = (("8b", "sharegpt"), ("8b", "reflexion"), ("8b", "lats"),
         ("70b", "sharegpt"), ("70b", "reflexion"), ("70b", "lats"))
AGENT = {"sharegpt": "chatbot-sharegpt", "reflexion": "reflexion-hotpotqa", "lats": "lats-hotpotqa"}
KNOB = {"reflexion": "max_reflections", "lats": "max_reflections"}   # Fig. 16(a)/(b): both sequential knobs [F]
# The paper does not state these knobs' values for Table III (docs/paper.md §2.9: "highest-accuracy configuration
# from Fig. 17", named by accuracy and latency only). Besides the latency-matched value we run the largest point of
# the paper's own sweep where it is a plausible reading of "highest accuracy": Reflexion 32 reflections (Fig. 16(a)
# [F]; [I] the 2 → 4 → 8 → 16 reflection latencies 16.9 → 25.6 → 56.0 → 325.5 s double on to ~650 s = Table III's
# 649.34 s at 32). LATS's Fig. 16(b) grid reaches 512, which our generator would run for hours: no such reading.
PAPER_GRID = {"reflexion": 32}
TOL_ENERGY = 0.25   # the target
TOL = 0.25


def estimated_mean_s(agent: str, knobs: dict, latency_model, n: int, seed: int) -> float:
    """Mean single-request latency of the first ``n`` sessions, estimated without simulation.

    The sessions are the ones a one-class closed-loop run with this seed draws
    (``runs.closed_loop_sessions``), so the estimate sees the sessions the simulation will.
    """
    return float(np.mean([single_request_latency_s(s, latency_model)
                          for s in closed_loop_sessions(agent, knobs, n, seed)]))


def match_knob(agent: str, knob: str, fixed: dict, target_s: float, latency_model, n: int, seed: int,
               steps: int = 4) -> int:
    """The integer value of ``knob`` whose expected latency alone is near ``target_s``: secant steps
    from the generator's default (latency grows about linearly with these knobs).

    The expectation is stratified on the generator's own ``solvable_fraction``: ``n`` sessions that
    can be solved and ``n`` that cannot, weighted by the fraction, so the few never-solved sessions
    that dominate the mean do not make it noisy."""
    tried: dict[int, float] = {}
    sf = fixed["solvable_fraction"]

    def f(x: int) -> float:
        if x not in tried:
            k = {**fixed, knob: x}
            tried[x] = (sf * estimated_mean_s(agent, {**k, "solvable_fraction": 1.0}, latency_model, n, seed)
                        + (1 - sf) * estimated_mean_s(agent, {**k, "solvable_fraction": 0.0}, latency_model, n, seed))
        return tried[x]

    x0 = int(getattr(make_agent(agent, **fixed).strategy, knob))
    x1 = max(1, round(x0 * target_s / f(x0)))
    for _ in range(steps):
        if x1 in tried or abs(f(x1) / target_s - 1) < 0.03:
            break
        slope = (f(x1) - f(x0)) / (x1 - x0)
        if slope <= 0:
            break
        x0, x1 = x1, max(1, min(4 * x1, round(x1 + (target_s - f(x1)) / slope)))
    return min(tried, key=lambda x: abs(tried[x] - target_s))


def representative_seed(agent: str, knobs: dict, target_s: float, latency_model, n: int, first_seed: int,
                        tries: int, within: float = 0.05) -> tuple[int, float]:
    """The first seed from ``first_seed`` whose ``n`` sessions have an estimated mean latency within
    ``within`` of ``target_s`` (else the closest of ``tries`` seeds): (seed, estimated mean).

    A few sessions that never succeed run to the cap and dominate the mean, so small samples
    scatter widely around the expected latency; choosing the sample whose latency is the paper's
    compares energy over queries of the paper's length."""
    got = {}
    for sd in range(first_seed, first_seed + tries):
        got[sd] = estimated_mean_s(agent, knobs, latency_model, n, sd)
        if abs(got[sd] / target_s - 1) < within:
            break
    sd = min(got, key=lambda k: abs(got[k] - target_s))
    return sd, got[sd]


def case_setting(lab: Lab, st, model: str, workload: str) -> dict:
    """Knobs and seed of one Table III case (see the module docstring)."""
    if workload == "sharegpt":
        return {"knobs": {}, "seed": st.seed, "estimated_s": None}
    target = paper(f"table3.{model}.{workload}.latency_s")
    fixed = {"solvable_fraction": paper(f"table3.{model}.{workload}.accuracy")}
    lat_model = lab.profile(PROFILES[model]).latency
    knobs = {**fixed, KNOB[workload]: match_knob(AGENT[workload], KNOB[workload], fixed, target, lat_model,
                                                 st.knob_sessions, st.seed + 1000)}
    seed, est = representative_seed(AGENT[workload], knobs, target, lat_model, st.table3_sessions, st.seed,
                                    st.seed_tries)
    return {"knobs": knobs, "seed": seed, "estimated_s": est}


def sensitivity(lab: Lab, st, model: str, wl: str, case: dict) -> list[dict]:
    """Wh/query and latency of the case at other values of its sequential knob (the paper does not
    state the value): half and double the latency-matched one, and the paper's largest sweep point
    where there is one (``PAPER_GRID``). Same seed, half the sessions."""
    knob, k = KNOB[wl], case["knobs"][KNOB[wl]]
    values = sorted({max(1, round(k / 2)), 2 * k, *([PAPER_GRID[wl]] if wl in PAPER_GRID else [])} - {k})
    out = []
    for v in values:
        res = lab.alone(AGENT[wl], max(1, st.table3_sessions // 2), model=model, knobs={**case["knobs"], knob: v},
                        seed=case["seed"])
        out.append({knob: v, "latency_s": float(e2e(res).mean()), "wh": wh_per_query(res)})
    return out


def table3(lab: Lab, st) -> dict[tuple[str, str], dict]:
    out = {}
    for model, wl in CASES:
        case = case_setting(lab, st, model, wl)
        if wl != "sharegpt":
            case["sensitivity"] = sensitivity(lab, st, model, wl, case)
        res = lab.alone(AGENT[wl], st.table3_sessions, model=model, knobs=case["knobs"], seed=case["seed"])
        lat = e2e(res)
        tp = res.profile.hardware.tp
        wh = wh_per_query(res)
        step_ms = 1e3 * step_s(res.profile.latency, 0, 0, 1, 0)   # a lone decode step (context read aside)
        out[(model, wl)] = {**case, "latency_s": float(lat.mean()), "p95_s": pct(lat, 95), "wh": wh, "tp": tp,
                            "decode_step_ms": step_ms,
                            "idle_w": res.profile.power.idle_w,
                            "w_per_gpu": wh * 3600 / float(lat.mean()) / tp,
                            "idle_share": res.summary["gpu_time_split"]["idle_tool_s"]
                            / sum(res.summary["gpu_time_split"].values()), "sessions": len(lat)}
    return out


def table3_section(t3: dict, out_dir) -> Section:
    rows = []
    for (model, wl), r in t3.items():
        base = t3[(model, "sharegpt")]
        name = f"{model.upper()} {wl}"
        p_w = paper_avg_gpu_w(model, wl) / r["tp"]
        rows.append(Row(f"{name}: GPU energy per query", r["wh"], f"table3.{model}.{wl}.wh", "Wh", TOL_ENERGY,
                        main=True, note=_energy_note(model, wl, r),
                        why=f"average power per GPU is {r['w_per_gpu'] / p_w:.2f}× the paper's and latency "
                            f"{r['latency_s'] / paper(f'table3.{model}.{wl}.latency_s'):.2f}× (energy = power × time)"))
        lat_check = "rel" if wl == "sharegpt" else "fit"
        implied_ms = r["decode_step_ms"] * paper(f"table3.{model}.{wl}.latency_s") / r["latency_s"]
        rows.append(Row(f"{name}: latency alone", r["latency_s"], f"table3.{model}.{wl}.latency_s", "s", TOL,
                        why=f"one decode step of a lone request takes {r['decode_step_ms']:.0f} ms in this profile; "
                            f"the paper's latency implies about {implied_ms:.0f} ms for answers of the same length",
                        check=lat_check, note="matched by the knob choice (see above)" if wl != "sharegpt" else
                        "the profile is fitted to other published measurements (LLM-Inference-Bench vLLM runs, "
                        "Vidur operators), not to this value"))
        rows.append(Row(f"{name}: average power per GPU", r["w_per_gpu"], None, "W", check="info",
                        paper_text=f"{p_w:.0f} W", ours_text=f"{r['w_per_gpu']:.0f} W ({r['w_per_gpu'] / p_w:.2f}×)",
                        note=f"energy ÷ latency ÷ {r['tp']} GPU(s); the GPU waits on tools, at {r['idle_w']:.0f} W, "
                             f"{100 * r['idle_share']:.0f} % of the time"))
        if wl != "sharegpt":
            ratio = r["wh"] / base["wh"]
            p_ratio = paper(f"table3.{model}.{wl}.wh") / paper(f"table3.{model}.sharegpt.wh")
            rows.append(Row(f"{name}: energy ÷ ShareGPT's", ratio, None, "x", check="info",
                            paper_text=f"{p_ratio:.1f}×", ours_text=f"{ratio:.1f}×",
                            note="how many chatbot answers one agent task costs"))
    detail = md_table(["model", "workload", "setting (knobs)", "seed", "sessions", "latency mean / p95 (s)",
                       "Wh/query", "W per GPU"],
                      [[m.upper(), w, ", ".join(f"{k}={v:g}" for k, v in r["knobs"].items()) or "defaults",
                        str(r["seed"]), str(r["sessions"]), f"{r['latency_s']:.1f} / {r['p95_s']:.1f}", f"{r['wh']:.3g}",
                        f"{r['w_per_gpu']:.0f}"] for (m, w), r in t3.items()])
    fig = figures.grouped_bars({f"{m.upper()} {w}": {"ours": r["wh"], "paper": paper(f"table3.{m}.{w}.wh")}
                                for (m, w), r in t3.items()}, "GPU Wh per query (log)",
                               "Table III: GPU energy per query, one request at a time", out_dir / "table3_energy.png",
                               log=True)
    sens = md_table(["model", "workload", "knob", "value", "latency mean (s)", "Wh/query", "paper Wh/query"],
                    [[m.upper(), w, KNOB[w], f"{p[KNOB[w]]:g}" + (" (matched)" if p.get("matched") else ""),
                      f"{p['latency_s']:.0f}", f"{p['wh']:.3g}", f"{paper(f'table3.{m}.{w}.wh'):g}"]
                     for (m, w), r in t3.items() if w != "sharegpt"
                     for p in sorted(r["sensitivity"] + [{KNOB[w]: r["knobs"][KNOB[w]], "latency_s": r["latency_s"],
                                                          "wh": r["wh"], "matched": True}], key=lambda p: p[KNOB[w]])])
    detail += ("\n\nSensitivity to the sequential knob, which the paper does not state for Table III (it names each "
               "setting only by its accuracy and latency, docs/paper.md §2.9), so ours is matched to the latency: "
               "the same seed at other values, half the sessions. Reflexion's 32 is the largest point of the paper's "
               "Fig. 16(a) sweep; our generator's trials are shorter than the paper's, so 32 reflections take far "
               "less than 649 s here.\n\n" + sens)
    return Section("table3", "Table III — GPU energy per query, one request at a time (HotpotQA)",
                   "Energy = the replica's GPU energy, busy steps and idle tool waits included, ÷ queries. Agent "
                   "settings: `solvable_fraction` = the paper's accuracy; the sequential knob set so the expected "
                   "latency alone is the paper's, and the sample (seed) whose estimated mean latency is within 5 % of "
                   "it — so latency is marked *fit*; energy is the checked prediction. The 70B profile is TP8.",
                   rows, [fig.name], "Settings used (simulated):\n\n" + detail,
                   data={f"{m}.{w}": r for (m, w), r in t3.items()})


def _energy_note(model: str, wl: str, r: dict) -> str:
    if wl == "sharegpt":
        lat = paper(f"table3.{model}.sharegpt.latency_s")
        return (f"one chatbot answer: {r['latency_s']:.1f} s of decoding alone (paper {lat:g} s"
                + "; profile built from published measurements, not fitted to the paper)")
    what = "retries with reflections" if wl == "reflexion" else "tree search"
    return f"{what}: hundreds of calls, {r['latency_s']:.0f} s of GPU time per query"


# ------------------------------------------------------------------------------ Table IV

def batched_projection(lab: Lab, st, model: str, wl: str, case: dict) -> dict:
    """Serve the case batched: the most users per replica (from ``st.batched_users``) at which the
    sessions take at most the paper's price of concurrency (2.1× their latency alone, docs/paper.md §2.6).

    Runs with the case's seed draw the same sessions in the same order whatever the number of users,
    so each batched session is compared with itself served alone (same session id): latency and
    GPU energy (its busy share plus its share of the idle time while it waited on tools) as ratios
    over the common sessions, applied to the Table III values. Small batched runs are then enough."""
    alone = finished(lab.alone(AGENT[wl], st.table3_sessions, model=model, knobs=case["knobs"],
                               seed=case["seed"]).sessions).set_index("session_id")
    chosen = None
    for users in st.batched_users:
        sessions = min(users * st.batched_rounds, max(users, st.batched_max_sessions))
        res = lab.batched(AGENT[wl], users, sessions, model=model, knobs=case["knobs"], seed=case["seed"])
        b = finished(res.sessions).set_index("session_id")
        ids = alone.index.intersection(b.index)
        slower = float(b.loc[ids, "e2e_s"].sum() / alone.loc[ids, "e2e_s"].sum())
        ok = slower <= paper("fig11.react_latency_increase")
        if ok or chosen is None:
            chosen = (users, res, b, ids, slower)
        if not ok:
            break
    users, res, b, ids, slower = chosen
    s = res.summary
    energy = float((b.loc[ids, "energy_j"] + b.loc[ids, "idle_energy_j"]).sum()
                   / (alone.loc[ids, "energy_j"] + alone.loc[ids, "idle_energy_j"]).sum())
    gpu_wh = case["wh"] * energy
    fac = s["facility_energy_j"] / s["gpu_energy_j"]
    mean_s = case["latency_s"] * slower
    return {"users": users, "compared": len(ids), "batching": energy, "gpu_wh": gpu_wh, "facility_over_gpu": fac,
            "facility_wh": gpu_wh * fac, "mean_s": mean_s, "qps_per_replica": users / mean_s,  # Little's law
            "p95_s": pct(b["e2e_s"].to_numpy(), 95), "tp": res.profile.hardware.tp}


def table4_section(lab: Lab, st, t3: dict, out_dir) -> Section:
    q = {"low": paper("table4.queries_low"), "high": paper("table4.queries_high")}
    rows, detail, bars = [], [], {}
    for model, wl in CASES:
        wh_paper = paper(f"table3.{model}.{wl}.wh")
        proj = batched_projection(lab, st, model, wl, t3[(model, wl)])
        for level, qpd in q.items():
            key = f"table4.{model}.{wl}.{level}_w"
            formula = paper_formula_power_w(wh_paper, qpd)
            rows.append(Row(f"{model.upper()} {wl} @ {_volume(qpd)}: paper's formula", formula, key, "W",
                            check="equal", ours_text=fmt_power(formula), paper_text=fmt_power(PAPER[key].value),
                            main=level == "low",
                            note=f"{wh_paper:g} Wh × {_volume(qpd)} ÷ 24 h, from the paper's Table III"))
            sim_w = proj["facility_wh"] * qpd / 24.0
            replicas = math.ceil(qpd / 86400 / proj["qps_per_replica"])
            rows.append(Row(f"{model.upper()} {wl} @ {_volume(qpd)}: simulated facility", sim_w, key, "W",
                            check="info", main=level == "low", ours_text=_sim_power(sim_w), paper_text=fmt_power(PAPER[key].value),
                            note=_why(proj, t3[(model, wl)]["wh"], wh_paper, replicas)))
            if level == "low":
                bars[f"{model.upper()} {wl}"] = {"paper formula": formula / 1e6, "simulated facility": sim_w / 1e6}
        detail.append([model.upper(), wl, f"{t3[(model, wl)]['wh']:.3g}", str(proj["users"]), f"{proj['gpu_wh']:.3g}",
                       f"{proj['facility_over_gpu']:.2f}×", f"{proj['qps_per_replica']:.3g}",
                       f"{t3[(model, wl)]['latency_s']:.0f} → {proj['mean_s']:.0f}", f"{proj['p95_s']:.0f}"])
    table = md_table(["model", "workload", "GPU Wh/query alone", "users per replica", "GPU Wh/query batched",
                      "facility ÷ GPU energy", "queries/s per replica", "mean latency alone → batched (s)",
                      "p95 batched (s)"], detail)
    fig = figures.grouped_bars(bars, f"MW at {_volume(q['low'])} (log)", "Table IV: datacenter power, formula vs simulated",
                               out_dir / "table4_power.png", log=True)
    return Section("table4", "Table IV — datacenter power for a daily query volume",
                   "Paper's formula: P = Wh/query × queries/day ÷ 24 h with the paper's Table III energies (GPU only, "
                   "no batching, PUE 1) — these cells must reproduce the paper's print exactly. Simulated: the same "
                   "Table III setting served batched — as many users per replica, back to back, as keeps the "
                   f"sessions within {paper('fig11.react_latency_increase'):g}× of their latency alone (the paper's "
                   "price of concurrency, §IV-C) — with "
                   "facility energy per query = GPU (busy and idle) + host (idle + 0.3 × GPU power above idle), × "
                   "PUE 1.1, scaled to the daily volume at that throughput per replica. Batching's effect on latency "
                   "and GPU energy is measured session by session against the same sessions served alone.",
                   rows, [fig.name], "Projection inputs (simulated):\n\n" + table)


def _why(proj: dict, wh_alone: float, wh_paper: float, replicas: int) -> str:
    return (f"our Wh/query alone ×{wh_alone / wh_paper:.2f} the paper's; batching {proj['users']} users ×"
            f"{proj['batching']:.2f}; host + PUE ×{proj['facility_over_gpu']:.2f}; "
            f"{replicas:,} replicas ({replicas * proj['tp']:,} GPUs) at {proj['qps_per_replica']:.3g} queries/s each")


def _volume(qpd: float) -> str:
    return f"{qpd / 1e6:g} M/day" if qpd < 1e9 else f"{qpd / 1e9:g} B/day"


def _sim_power(w: float) -> str:
    """A simulated power to three significant figures, in MW or GW."""
    mw = w / 1e6
    return f"{mw:.3g} MW" if mw < 999.5 else f"{mw / 1e3:.3g} GW"
