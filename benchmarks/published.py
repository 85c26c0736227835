"""Published-measurements check: every development case beside the model's prediction.

    python benchmarks/published.py            # the table, then one summary line per group
    python benchmarks/published.py --csv F    # also write the rows

Each case is a published measurement (source in the table's ``source`` column; the data and their
licences are in ``calibrate/data/measured/``). The prediction of a case comes from a fit that did
NOT see the case's model: the GPU efficiencies are refitted with every run of that model left out
(``calibrate/measured.py``, ``exclude_model``), then the model is derived from its catalog shape.
A static batch (all requests at time 0, equal lengths, vLLM without chunked prefill) runs through the
one step predictor (``core/step.py``) exactly as a replica steps it.

Tolerances (the [measured-profiles] and [power-model] issues): ±15 % single request (batch 1
end-to-end, TTFT), ±20 % closed-batch throughput, ±15 % energy per request.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from agentwatt.calibrate import measured as M

TOL = {"single-request e2e": 0.15, "TTFT": 0.15, "closed-batch throughput": 0.20, "energy per request": 0.15,
       "other engines (transfer)": 0.15, "power per GPU vs TP (transfer)": 0.15}
LIB = "LLM-Inference-Bench (argonne-lcf, BSD-3) Plots/"


def cases() -> list[dict]:
    out = []
    for gpu in M.ARGONNE_HW.values():
        for r in M._rows("argonne_vllm.csv"):
            if M.ARGONNE_HW.get(r["hardware"]) != gpu or r["metric"] not in ("e2e_latency_s", "ttft_s"):
                continue
            m = M.get_model(M.ARGONNE_MODEL[r["model"]])
            tp, b, i, o, y = int(r["tp"]), int(r["batch"]), int(r["input_len"]), int(r["output_len"]), float(r["value"])
            if not M.kv_fits(m, gpu, tp, b * (i + o)):
                continue   # KV does not fit: vLLM preempts; not a static-batch case
            lat = M.derive(m.name, gpu, tp, exclude_model=m.name)
            ttft, e2e = M.static_batch(lat, b, i, o)
            if r["metric"] == "ttft_s":
                group, meas, pred, unit = "TTFT", y, e2e, "s"
            elif b == 1:
                group, meas, pred, unit = "single-request e2e", y, e2e, "s"
            else:
                group, meas, pred, unit = "closed-batch throughput", b * (i + o) / y, b * (i + o) / e2e, "tok/s"
            out.append(dict(group=group, case=f"vLLM {m.name} {tp}x{gpu} b{b} {i}/{o}", measured=meas,
                            predicted=pred, unit=unit, source=LIB + ("All_results.csv" if r["metric"] != "ttft_s"
                                                                      else "Fig_21/all_results_TTFT.csv")))
        for m, tp, b, i, o, lat_s, power_w, e_req in M._power_cases(gpu):
            pm = M.fit_power(gpu, exclude_model=m.name)
            lat = M.derive(m.name, gpu, tp, exclude_model=m.name)
            t, e = M.static_batch_energy(lat, pm, b, i, o)
            # the file's energy per request is average power (sampled over the run and a ~1 s idle tail)
            # x the run's latency / batch: the same definition on the prediction
            avg_w = (e + pm.idle_w * M.IDLE_TAIL_S) / (t + M.IDLE_TAIL_S)
            pred = avg_w * t / b
            out.append(dict(group="energy per request", case=f"vLLM {m.name} {tp}x{gpu} b{b} {i}/{o}",
                            measured=e_req, predicted=pred, unit="J",
                            source=LIB + "Fig_16_a_b/power_results.csv (NVML, GPU 0)"))
    out += other_engine_cases()
    out += splitwise_power_cases()
    for c in out:
        c["error"] = c["predicted"] / c["measured"] - 1
        c["tolerance"] = TOL[c["group"]]
        c["ok"] = abs(c["error"]) <= c["tolerance"]
    return out


def other_engine_cases() -> list[dict]:
    """Measurements from other engines and versions (NeMo/TensorRT-LLM, NIM FP8, vLLM 0.2x CI runs,
    2023 vLLM), run through the bundled or derived profiles: how far the vLLM-0.6-fitted model
    transfers (informative; ``calibrate/data/measured/other_published.csv`` names each source)."""
    from agentwatt.core import step
    from agentwatt.core.profile import load_profile
    out = []
    for r in M._rows("other_published.csv"):
        lat = load_profile(r["profile"]).latency
        b, i, o, q, v = int(r["batch"]), int(r["input_len"]), int(r["output_len"]), r["quantity"], float(r["value"])
        ttft, e2e = M.static_batch(lat, b, i, o)
        tpot = step.step_s(lat, 0, 0, 1, i + o / 2)
        pred, unit = {"e2e": (e2e * 1e3, "ms"), "e2e_s": (e2e, "s"), "tpot": (tpot * 1e3, "ms"),
                      "ttft": (ttft * 1e3, "ms"), "decode_tok_s": (1.0 / tpot, "tok/s")}[q]
        out.append(dict(group="other engines (transfer)", case=f"{r['engine'][:28]} {r['profile']} b{b} {i}/{o} {q}",
                        measured=v, predicted=pred, unit=unit, source=r["source"]))
    return out


def splitwise_power_cases() -> list[dict]:
    """Average power per GPU of Llama-2-70B at TP 2/4/8 on DGX-A100 (Splitwise, 2023 vLLM; prompt 512,
    128 output tokens, batch 1-16) against the derived ``llama-2-70b_<tp>xa100-80gb`` profiles: the
    power model was fitted on single-GPU 7-8B runs, so the fall of per-GPU power with TP is a
    prediction (informative: the 2023 engine's steps are 1.1-2x slower than the profile's)."""
    from agentwatt.core.profile import load_profile
    out = []
    for r in M._rows("splitwise_perf.csv"):
        if r["model"] != "llama2-70b" or r["hardware"] != "a100-80gb" or r["prompt_size"] != "512" \
                or not r["average_power_frac_tdp_median"]:
            continue
        tp, b = int(r["tp"]), int(r["batch_size"])
        prof = load_profile(f"llama-2-70b_{tp}xa100-80gb")
        t, e = M.static_batch_energy(prof.latency, prof.power, b, 512, int(r["output_tokens"]))
        out.append(dict(group="power per GPU vs TP (transfer)", case=f"vLLM-2023 llama-2-70b {tp}xa100-80gb b{b} 512/128",
                        measured=float(r["average_power_frac_tdp_median"]) * 400.0, predicted=e / t, unit="W",
                        source="splitwise-sim data/perf_model.csv (MIT), average_power x 400 W TDP"))
    return out


def summary(rows: list[dict]) -> dict[str, tuple[int, int, float]]:
    res = {}
    for g in TOL:
        rs = [r for r in rows if r["group"] == g]
        if rs:
            res[g] = (sum(r["ok"] for r in rs), len(rs), sum(abs(r["error"]) for r in rs) / len(rs))
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path)
    a = ap.parse_args()
    rows = cases()
    print(f"{'group':24s} {'case':44s} {'measured':>10s} {'predicted':>10s} {'error':>8s} {'tol':>5s}")
    for r in rows:
        print(f"{r['group']:24s} {r['case']:44s} {r['measured']:10.4g} {r['predicted']:10.4g} "
              f"{100 * r['error']:+7.1f}% {100 * r['tolerance']:4.0f}% {'' if r['ok'] else 'MISS'}")
    for g, (ok, n, mape) in summary(rows).items():
        print(f"{g}: {ok}/{n} within ±{100 * TOL[g]:.0f} %, mean |error| {100 * mape:.1f} %")
    for gpu, v in M.leave_one_gpu_out().items():
        print(f"transfer route {v['from']} -> {gpu} (leave-one-GPU-out, {v['n']} runs): mean |error| "
              f"{100 * v['mape']:.1f} %, p90 {100 * v['p90_ape']:.1f} %, bias {100 * v['bias']:+.1f} %")
    if a.csv:
        with open(a.csv, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
