"""agentwatt vs Vidur 0.0.26 on the same trace, profile and batching knobs: wall time, peak RSS, latency.

Setup (once; Vidur lives in its own venv, this script installs nothing)::

    python3 -m venv /tmp/vidur-venv && /tmp/vidur-venv/bin/pip install vidur==0.0.26

Run::

    python benchmarks/vs_vidur.py --vidur-python /tmp/vidur-venv/bin/python
    python benchmarks/vs_vidur.py --vidur-python ... --limit 2000 --routing lor     # quick look

What it does (``docs/anchors.md`` §5):

1. exports our profile (default the bundled ``llama-3.1-8b_a100-40gb``, Llama-3-8B shaped) to
   Vidur's profiling schema in an HF-hub-style cache (``benchmarks/vidur_export.py`` explains the
   mapping of our step model onto Vidur's per-layer ops), plus placeholder network CSVs;
2. writes the trace (default the whole Azure 2023 conversation trace) in Vidur's PyPI schema
   ``Date, Time, PromptTokenCount, CompletionTokenCount``, prompt + output capped at 4,096 tokens
   as Vidur's replay caps them. BOTH simulators read that one file (ours with
   ``format = "vidur-csv"``);
3. warms Vidur's cache (random-forest training and its prediction table, one-off, timed apart) on
   a 50-request cut;
4. for each routing (round-robin = ours ``round_robin``; Vidur ``lor`` = ours ``fewest_queued``),
   runs Vidur and then ours, each in its own subprocess, and reads each child's wall time and peak
   RSS (``os.wait4``: that child's own ``ru_maxrss``);
5. prints wall times, their ratio, peak RSS, and TTFT / e2e mean, p50, p90, p99 of both with the
   relative difference (ours − Vidur) / Vidur, plus a per-request comparison (requests are
   matched by trace row).

Aligned knobs: 8 replicas, TP1, chunked prefill with a 512-token budget (Vidur Sarathi
``chunk_size`` = our ``max_num_batched_tokens``), batch cap 128 (``batch_size_cap`` =
``max_num_seqs``), block size 16, no prefix caching, the same KV capacity: our capacity for a
40 GB card (``sim/fleet.kv_capacity_tokens``: 0.9 × 40 GiB − weights − activations) is passed to
Vidur as ``--cache_config_num_blocks``, since Vidur's ``a100`` device is the 80 GB card. Vidur's
GQA decode-attention surcharge (``attention_decode_batching_overhead_fraction``, 0.1) is set to 0
and its KV prediction granularity to 16 tokens (default 256) so that its lookup rounding stays
small. The linear-in-tokens cost of our step model is exported into Vidur's attention ops by
default (``--token-op attention``): Vidur looks its one-token-count ops (``mlp_up_proj`` …) up
at the batch's token count rounded up to a multiple of 8, which charges a lone decoding sequence
for 8 tokens (+8.5 % per decode step with the A100 profile); ``--token-op mlp`` is the plain
recipe of docs/anchors.md §5 and shows that effect. Vidur's chrome trace is off (we write no equivalent); its request, batch and utilisation
metrics stay on.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _paths import shared_file  # noqa: E402

DEFAULT_TRACE = str(shared_file("traces/azure_llm_2023_conv.csv"))  # ../shared or $AGENTWATT_SHARED
ROUTINGS = {"round_robin": ("round_robin", "round_robin"), "lor": ("lor", "fewest_queued")}
PCTS = (50, 90, 99)


# ------------------------------------------------------------------------------------ children
def run_child(cmd: list[str], log: Path, env: dict | None = None, cwd: str | None = None) -> dict:
    """Run ``cmd`` with output to ``log``; its wall time and its own peak RSS (os.wait4)."""
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{cmd[0]} ... exited with {p.returncode}; log {log}:\n{tail}")
    return {"wall_s": wall, "max_rss_mib": ru.ru_maxrss / 1024.0, "cpu_s": ru.ru_utime + ru.ru_stime}


def ours_child(spec_path: str) -> None:
    """Child process: run our simulator on the spec, write per-call latencies and timings."""
    t0 = time.perf_counter()
    from agentwatt.sim.run import run
    from agentwatt.sim.scenario import scenario_from_dict
    t_import = time.perf_counter() - t0
    spec = json.loads(Path(spec_path).read_text())
    sc = scenario_from_dict(spec["scenario"], "vs_vidur")
    res = run(sc)
    c = res.calls.sort_values("session_id")
    ttft = (c["first_token_s"] - c["submit_s"]).to_numpy()
    e2e = (c["finish_s"] - c["submit_s"]).to_numpy()
    np.savez(spec["out"], session_id=c["session_id"].to_numpy(), ttft=ttft, e2e=e2e,
             preemptions=c["preemptions"].to_numpy(), prompt=c["prompt_tokens"].to_numpy(),
             output=c["output_tokens"].to_numpy())
    s = res.summary
    meta = {"import_s": t_import, "run_wall_s": s["wall_time_s"], "sim_time_s": s["sim_time_s"],
            "calls_completed": s.get("calls_completed"), "preemptions": s.get("preemptions"),
            "gpu_utilization": s.get("gpu_utilization"), "kv_peak_utilization": s.get("kv_peak_utilization"),
            "steps": s.get("steps"), "step_events": s.get("step_events")}
    Path(spec["out"] + ".json").write_text(json.dumps(meta))


# --------------------------------------------------------------------------------------- Vidur
P = "--random_forrest_execution_time_predictor_config_"


def vidur_cmd(python: str, trace: Path, routing: str, datasets: dict, grid, num_blocks: int, replicas: int,
              chunk: int, batch_cap: int, cache_dir: Path, out_dir: Path, chrome_trace: bool) -> list[str]:
    cmd = [python, "-m", "vidur.main",
           "--replica_config_model_name", "meta-llama/Llama-3-8B", "--replica_config_device", "a100",
           "--replica_config_network_device", "a100_dgx", "--cluster_config_num_replicas", str(replicas),
           "--replica_config_tensor_parallel_size", "1", "--replica_config_num_pipeline_stages", "1",
           "--global_scheduler_config_type", routing,
           "--request_generator_config_type", "trace_replay",
           "--trace_request_generator_config_trace_file", str(trace),
           "--trace_request_generator_config_date", "2023-11-16",
           "--trace_request_generator_config_prefill_scale_factor", "1",
           "--trace_request_generator_config_decode_scale_factor", "1",
           "--trace_request_generator_config_time_scale_factor", "1",
           "--trace_request_generator_config_max_tokens", str(grid.max_tokens),
           "--replica_scheduler_config_type", "sarathi",
           "--sarathi_scheduler_config_batch_size_cap", str(batch_cap),
           "--sarathi_scheduler_config_chunk_size", str(chunk),
           "--cache_config_block_size", "16",
           "--cache_config_num_blocks", str(num_blocks),
           "--no-cache_config_enable_prefix_caching",
           "--execution_time_predictor_config_type", "random_forrest",
           P + "cache_dir", str(cache_dir),
           P + "model_profiling_dataset", datasets["model_profiling_dataset"],
           P + "network_profiling_dataset", datasets["network_profiling_dataset"],
           P + "prediction_max_tokens_per_request", str(grid.max_tokens),
           P + "prediction_max_prefill_chunk_size", str(grid.max_chunk),
           P + "prediction_max_batch_size", str(grid.max_batch),
           P + "kv_cache_prediction_granularity", str(grid.kv_granularity),
           P + "attention_decode_batching_overhead_fraction", "0",
           P + "k_fold_cv_splits", "2",
           P + "num_estimators", "50", P + "max_depth", "16", P + "min_samples_split", "2",
           "--no-metrics_config_store_plots",
           "--metrics_config_output_dir", str(out_dir)]
    if not chrome_trace:
        cmd.append("--no-metrics_config_enable_chrome_trace")
    return cmd


def vidur_env() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="disabled", HF_HUB_DISABLE_TELEMETRY="1")
    return env


def _log_time(line: str) -> datetime | None:
    m = re.search(r"(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)", line)
    return datetime(2000, int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5])) if m else None


def vidur_loop_s(log: Path) -> float | None:
    """Seconds between Vidur's 'Starting simulation' and 'Simulation ended' log lines (1 s resolution)."""
    start = end = None
    for line in log.read_text(errors="replace").splitlines():
        if "Starting simulation" in line:
            start = _log_time(line)
        elif "Simulation ended" in line:
            end = _log_time(line)
    return (end - start).total_seconds() if start and end else None


def read_vidur(out_dir: Path) -> dict:
    import pandas as pd
    runs = sorted(p for p in out_dir.iterdir() if p.is_dir())
    df = pd.read_csv(runs[-1] / "request_metrics.csv").sort_values("Request Id")
    return {"id": df["Request Id"].to_numpy(), "ttft": df["prefill_e2e_time"].to_numpy(),
            "e2e": df["request_e2e_time"].to_numpy(), "restarts": df["request_num_restarts"].to_numpy(),
            "prompt": df["request_num_prefill_tokens"].to_numpy(), "output": df["request_num_decode_tokens"].to_numpy()}


# ------------------------------------------------------------------------------------- compare
def pct(a: np.ndarray) -> dict:
    a = a[np.isfinite(a)]
    out = {"mean": float(a.mean())}
    out.update({f"p{p}": float(v) for p, v in zip(PCTS, np.percentile(a, PCTS))})
    return out


def compare(ours: dict, vid: dict) -> dict:
    out = {}
    for m in ("ttft", "e2e"):
        o, v = pct(ours[m]), pct(vid[m])
        out[m] = {k: {"ours": o[k], "vidur": v[k], "rel": (o[k] - v[k]) / v[k]} for k in o}
        if len(ours[m]) == len(vid[m]):
            r = (ours[m] - vid[m]) / vid[m]
            out[m]["per_request"] = {"median_rel": float(np.median(r)), "p1_rel": float(np.percentile(r, 1)),
                                     "p99_rel": float(np.percentile(r, 99)),
                                     "within_5pct": float(np.mean(np.abs(r) <= 0.05))}
    return out


def fmt_s(x: float) -> str:
    return f"{x:.3f}" if x < 100 else f"{x:.1f}"


def print_report(rows: list[dict], info: dict) -> None:
    print()
    print(f"trace: {info['trace']} ({info['requests']} requests, {info['sim_span_s']:.0f} s of arrivals); "
          f"{info['replicas']} replicas; KV {info['kv_tokens']} tokens ({info['num_blocks']} blocks) per replica; "
          f"chunk {info['chunk']}; batch cap {info['batch_cap']}; token op: {info['token_op']}")
    print(f"Vidur one-off cache warm-up (RF training + prediction table, 50 requests): "
          f"{info['vidur_warmup']['wall_s']:.1f} s wall, {info['vidur_warmup']['max_rss_mib']:.0f} MiB")
    print()
    print(f"load average before: {info['loadavg_before']}, after: {info.get('loadavg_after')}")
    print()
    print("| routing | simulator | wall (process) | CPU (process) | event loop / run() | peak RSS | wall ratio Vidur/ours |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["vidur"]["wall_s"] / r["ours"]["wall_s"]
        loop = r["vidur"].get("loop_s")
        print(f"| {r['routing']} | Vidur 0.0.26 | {r['vidur']['wall_s']:.1f} s | {r['vidur']['cpu_s']:.1f} s | "
              f"{'—' if loop is None else f'{loop:.0f} s'} | {r['vidur']['max_rss_mib']:.0f} MiB | **{ratio:.1f}×** |")
        print(f"| {r['routing']} | agentwatt | {r['ours']['wall_s']:.1f} s | {r['ours']['cpu_s']:.1f} s | "
              f"{r['ours']['run_wall_s']:.1f} s | {r['ours']['max_rss_mib']:.0f} MiB | |")
    print()
    print("| routing | metric | stat | Vidur (s) | ours (s) | (ours − Vidur)/Vidur |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        for m in ("ttft", "e2e"):
            for k in ("mean", "p50", "p90", "p99"):
                d = r["compare"][m][k]
                print(f"| {r['routing']} | {m} | {k} | {fmt_s(d['vidur'])} | {fmt_s(d['ours'])} | {d['rel']:+.1%} |")
    print()
    print("Per request (matched by trace row): (ours − Vidur)/Vidur")
    print("| routing | metric | median | p1 | p99 | share within ±5 % | Vidur restarts | our preemptions |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        for m in ("ttft", "e2e"):
            pr = r["compare"][m].get("per_request")
            if pr:
                print(f"| {r['routing']} | {m} | {pr['median_rel']:+.1%} | {pr['p1_rel']:+.1%} | {pr['p99_rel']:+.1%} | "
                      f"{pr['within_5pct']:.0%} | {r['vidur_restarts']} | {r['our_preemptions']} |")


# ----------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vidur-python", help="python of a venv with vidur==0.0.26 (see the module docstring)")
    ap.add_argument("--trace", default=DEFAULT_TRACE, help="Azure 2023 CSV (default: the whole conversation trace)")
    ap.add_argument("--limit", type=int, default=None, help="first N requests only")
    ap.add_argument("--profile", default="llama-3.1-8b_a100-40gb")
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--routing", default="round_robin,lor", help="comma list of round_robin, lor")
    ap.add_argument("--chunk", type=int, default=512, help="Vidur chunk_size = our max_num_batched_tokens")
    ap.add_argument("--batch-cap", type=int, default=128, help="Vidur batch_size_cap = our max_num_seqs")
    ap.add_argument("--max-tokens", type=int, default=4096, help="cap on prompt + output (Vidur's replay cap)")
    ap.add_argument("--kv-granularity", type=int, default=16, help="Vidur kv_cache_prediction_granularity")
    ap.add_argument("--token-op", default="attention", choices=("attention", "mlp"),
                    help="where the linear-in-tokens cost goes in the export (see vidur_export.py): "
                         "attention (default; exact for decode steps) or mlp (docs/anchors.md §5 recipe; Vidur "
                         "pads the batch's tokens to a multiple of 8)")
    ap.add_argument("--kv-capacity-tokens", type=int, default=None,
                    help="per replica (default: ours for the profile's card with this chunk budget)")
    ap.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "agentwatt-vs-vidur"))
    ap.add_argument("--vidur-chrome-trace", action="store_true", help="let Vidur write its chrome trace")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--child-ours", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child_ours:
        ours_child(a.child_ours)
        return 0
    if not a.vidur_python:
        ap.error("--vidur-python is required (python3 -m venv /tmp/vidur-venv && "
                 "/tmp/vidur-venv/bin/pip install vidur==0.0.26)")

    import vidur_export as ve
    from agentwatt.core.profile import load_profile
    from agentwatt.sim.fleet import kv_capacity_tokens
    from agentwatt.sim.scenario import EngineConfig

    routings = [r.strip() for r in a.routing.split(",") if r.strip()]
    for r in routings:
        if r not in ROUTINGS:
            ap.error(f"--routing {r}: expected round_robin or lor")
    work = Path(a.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    profile = load_profile(a.profile)
    kv = a.kv_capacity_tokens or kv_capacity_tokens(profile, EngineConfig(max_num_batched_tokens=a.chunk))
    num_blocks = kv // 16
    kv = num_blocks * 16
    grid = ve.Grid(max_tokens=a.max_tokens, max_batch=a.batch_cap, max_chunk=a.chunk, kv_granularity=a.kv_granularity)
    cache = work / "vidur_cache"
    datasets = ve.export_profile(profile, cache, grid, token_op=a.token_op)

    rows = ve.azure_rows(a.trace, a.max_tokens)
    if a.limit:
        rows = rows[:a.limit]
    trace = work / "trace_vidur.csv"
    ve.write_vidur_trace(rows, trace)
    warm = work / "trace_warmup.csv"
    ve.write_vidur_trace(rows[:50], warm)
    info = {"trace": a.trace, "requests": len(rows), "sim_span_s": rows[-1][0], "replicas": a.replicas,
            "kv_tokens": kv, "num_blocks": num_blocks, "chunk": a.chunk, "batch_cap": a.batch_cap,
            "token_op": a.token_op, "profile": profile.name, "loadavg_before": os.getloadavg(), "datasets": {k: datasets[k] for k in
                                                                           ("model_profiling_dataset", "network_profiling_dataset")}}
    print(f"exported {profile.name} → {datasets['model_profiling_dataset']} under {cache}; "
          f"trace {trace} ({len(rows)} requests); KV {kv} tokens per replica", flush=True)

    env = vidur_env()
    out = work / "vidur_out_warmup"
    shutil.rmtree(out, ignore_errors=True)
    cmd = vidur_cmd(a.vidur_python, warm, "round_robin", datasets, grid, num_blocks, a.replicas, a.chunk,
                    a.batch_cap, cache, out, False)
    info["vidur_warmup"] = run_child(cmd, work / "vidur_warmup.log", env=env, cwd=str(work))
    print(f"Vidur cache warm-up: {info['vidur_warmup']['wall_s']:.1f} s", flush=True)

    results = []
    for routing in routings:
        v_policy, our_policy = ROUTINGS[routing]
        out = work / f"vidur_out_{routing}"
        shutil.rmtree(out, ignore_errors=True)
        log = work / f"vidur_{routing}.log"
        cmd = vidur_cmd(a.vidur_python, trace, v_policy, datasets, grid, num_blocks, a.replicas, a.chunk,
                        a.batch_cap, cache, out, a.vidur_chrome_trace)
        print(f"[{routing}] Vidur ...", flush=True)
        vt = run_child(cmd, log, env=env, cwd=str(work))
        vt["loop_s"] = vidur_loop_s(log)
        vid = read_vidur(out)
        print(f"[{routing}] Vidur {vt['wall_s']:.1f} s, {vt['max_rss_mib']:.0f} MiB", flush=True)

        scenario = {"name": f"vs-vidur-{routing}", "profile": a.profile,
                    "run": {"seed": 1, "duration_s": rows[-1][0] + 1.0, "drain_timeout_s": 1e6,
                            "power_resolution_s": 1.0},
                    "fleet": {"replicas": a.replicas},
                    "engine": {"max_num_seqs": a.batch_cap, "max_num_batched_tokens": a.chunk, "block_size_tokens": 16,
                               "prefix_caching": False, "kv_capacity_tokens": kv},
                    "router": {"policy": our_policy, "session_affinity": False},
                    "workload": [{"trace": str(trace), "format": "vidur-csv"}]}
        spec = work / f"ours_{routing}.json"
        npz = work / f"ours_{routing}.npz"
        spec.write_text(json.dumps({"scenario": scenario, "out": str(npz)}))
        print(f"[{routing}] agentwatt ...", flush=True)
        ot = run_child([sys.executable, str(Path(__file__).resolve()), "--child-ours", str(spec)],
                       work / f"ours_{routing}.log")
        ot.update(json.loads(Path(str(npz) + ".json").read_text()))
        z = np.load(npz)
        ours = {k: z[k] for k in z.files}
        print(f"[{routing}] agentwatt {ot['wall_s']:.1f} s, {ot['max_rss_mib']:.0f} MiB", flush=True)
        if len(ours["ttft"]) != len(vid["ttft"]):
            print(f"warning: {len(ours['ttft'])} calls in ours vs {len(vid['ttft'])} in Vidur", flush=True)
        elif not (np.array_equal(ours["prompt"], vid["prompt"]) and np.array_equal(ours["output"], vid["output"])):
            print("warning: token counts differ between the two runs", flush=True)
        results.append({"routing": routing, "vidur": vt, "ours": ot, "compare": compare(ours, vid),
                        "vidur_restarts": int(np.sum(vid["restarts"])),
                        "our_preemptions": int(np.sum(ours["preemptions"]))})
    info["loadavg_after"] = os.getloadavg()
    print_report(results, info)
    if a.json:
        Path(a.json).write_text(json.dumps({"info": info, "results": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
