"""``agentwatt sweep`` and ``agentwatt plan``: click commands, attached to the main group in
``cli/main.py``. User errors are ``AgentwattError``s with one-line messages; the main group
prints them and exits 2. ``plan`` exits 1, with one line, when no size in range qualifies.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from agentwatt.cli.options import no_plots_option, no_report_option, out_option, set_option, write_html_report

_RUNNER_OPTIONS = [
    click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
                 help="Use this running Dask cluster as it is (workers must see the scenario file)."),
    click.option("--workers", type=int, default=None,
                 help="Local Dask workers (processes, 1 thread each); default: one per core. 1 = serial."),
    click.option("--serial", is_flag=True, help="Run in this process, without Dask."),
    click.option("--progress/--no-progress", default=True, help="Progress bar (only on a terminal)."),
]


def _runner_options(fn):
    for opt in reversed(_RUNNER_OPTIONS):
        fn = opt(fn)
    return fn


def _power(w: float | None) -> str:
    if w is None or not math.isfinite(w):
        return "n/a"
    for unit, scale in (("MW", 1e6), ("kW", 1e3)):
        if abs(w) >= scale:
            return f"{w / scale:.3g} {unit}"
    return f"{w:.3g} W"


def _num(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}g}"


# ------------------------------------------------------------------------------ sweep

@click.command("sweep")
@click.argument("scenario", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=V1,V2,...",
              help="Sweep a scenario key over values (TOML scalars); repeat for a grid (cartesian product).")
@click.option("--grid", "grid_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Sweep file: [grid] key = [values], optional seeds = N; --set adds or replaces keys.")
@click.option("--seeds", type=int, default=None, help="Seeds per point (seed i = scenario seed + i); default 3.")
@out_option(Path("sweep"), "Result store: points/, sweep.parquet, sweep_summary.parquet, plots.")
@click.option("--confidence", type=float, default=0.95, show_default=True,
              help="Level of the per-point confidence intervals in sweep_summary.parquet.")
@click.option("--metric", default="session_e2e_s.p99", show_default=True, help="Metric to print and plot.")
@no_plots_option
@no_report_option
@_runner_options
def sweep_cmd(scenario: Path | None, sets: tuple[str, ...], grid_file: Path | None, seeds: int | None,
              out_dir: Path, confidence: float, metric: str, no_plots: bool, no_report: bool, scheduler: str | None,
              workers: int | None, serial: bool, progress: bool) -> None:
    """Run SCENARIO over a grid of overrides × seeds; resumable (finished runs are kept and skipped)."""
    from agentwatt.plan.runners import SerialRunner, open_runner
    from agentwatt.plan.store import ResultStore
    from agentwatt.plan.sweep import build_grid, resolve_scenario, run_specs, sweep
    from agentwatt.plan.uncertainty import check_confidence
    check_confidence(confidence)
    grid = build_grid(sets, grid_file, seeds)
    sc = resolve_scenario(scenario)
    specs = run_specs(sc, grid)
    store = ResultStore(out_dir)
    todo = sum(not store.has(s) for s in specs)
    runner = SerialRunner() if todo == 0 else open_runner(scheduler, workers, serial)
    try:
        click.echo(f"sweep: {len(grid.points())} point(s) x {grid.seeds} seed(s) = {len(specs)} runs, "
                   f"{len(specs) - todo} already in {out_dir}/; running {todo} on {runner.describe()}")
        res = sweep(sc, grid, out_dir, runner, confidence=confidence, plots=not no_plots, metric=metric,
                    progress=progress and sys.stderr.isatty())
    finally:
        runner.close()
    if not no_report:
        res.files["report"] = write_html_report(out_dir)
    click.echo(format_sweep(res.summary, metric))
    click.echo(f"{res.runs_done_now} run(s) in {res.wall_s:.1f} s; wrote {len(res.files)} files to {out_dir}/: "
               + ", ".join(p.name for p in res.files.values()))


def format_sweep(summary, metric: str, max_rows: int = 40) -> str:
    """One line per point: its parameters, then ``metric`` mean [CI] over seeds."""
    df = summary[summary["metric"] == metric]
    if df.empty:
        return f"--metric {metric}: not in the summary (try session_e2e_s.p99, ttft_s.p90, gpu_avg_power_w)"
    params = [c for c in df.columns if c.startswith("param.")]
    conf = df["confidence"].iloc[0]
    lines = [f"{metric}: mean over seeds [{conf:.0%} CI; on the log scale when every value is positive], "
             f"n = seeds"]
    shown = df.head(max_rows)
    labels = [", ".join(f"{p.removeprefix('param.')}={row[p]}" for p in params) or "(scenario as is)"
              for _, row in shown.iterrows()]
    width = max(map(len, labels))
    for label, (_, row) in zip(labels, shown.iterrows()):
        lines.append(f"  {label:<{width}} {_num(row['mean']):>10} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]"
                     f" n={row['n']}")
    if len(df) > max_rows:
        lines.append(f"  … {len(df) - max_rows} more points in sweep_summary.parquet")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ plan

@click.command("plan")
@click.argument("scenario", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--slo", "slos", multiple=True, required=True, metavar="METRIC<=VALUE",
              help="Service-level objective on a summary metric, e.g. 'session_e2e_s.p99<=60'; repeatable.")
@click.option("--power-budget-mw", type=float, default=None, help="Peak power budget (facility if the summary "
              "has facility power, else GPU).")
@click.option("--param", default="fleet.replicas", show_default=True, help="Integer scenario key to size.")
@click.option("--min", "lo", type=int, default=1, show_default=True, help="Smallest size to consider.")
@click.option("--max", "hi", type=int, default=64, show_default=True, help="Largest size to consider.")
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds per size (>= 2).")
@click.option("--confidence", type=float, default=0.9, show_default=True,
              help="One-sided confidence of the t-bound of the metric's mean that must meet the SLO.")
@set_option
@out_option(Path("plan"), "Result store and plan.json, plan.png.")
@click.option("--no-plots", "--no-plot", "no_plots", is_flag=True, help="Skip plan.png.")
@no_report_option
@_runner_options
@click.pass_context
def plan_cmd(ctx: click.Context, scenario: Path | None, slos: tuple[str, ...], power_budget_mw: float | None,
             param: str, lo: int, hi: int, seeds: int, confidence: float, sets: tuple[str, ...], out_dir: Path,
             no_plots: bool, no_report: bool, scheduler: str | None, workers: int | None, serial: bool,
             progress: bool) -> None:
    """Find the smallest fleet for SCENARIO meeting the SLOs with stated confidence, within a power budget."""
    from agentwatt.cli.options import parse_sets
    from agentwatt.plan.plan import check_plan_inputs, parse_slo, plan
    from agentwatt.plan.runners import open_runner
    from agentwatt.plan.sweep import resolve_scenario
    parsed = [parse_slo(s) for s in slos]
    fixed = parse_sets(sets, seed_flag="--seeds")
    budget_w = None if power_budget_mw is None else power_budget_mw * 1e6
    check_plan_inputs(resolve_scenario(scenario), parsed, param=param, lo=lo, hi=hi, seeds=seeds,
                      confidence=confidence, budget_w=budget_w, fixed=fixed)
    runner = open_runner(scheduler, workers, serial)
    try:
        click.echo(f"plan: smallest {param} in {lo}..{hi} with " + " and ".join(s.text for s in parsed)
                   + f" ({confidence:.0%} one-sided t-bound over {seeds} seeds, log scale for positive metrics)"
                   + (f" within {power_budget_mw:g} MW peak" if budget_w else "") + f"; on {runner.describe()}")
        res = plan(scenario, parsed, out_dir, runner, param=param, lo=lo, hi=hi, seeds=seeds, confidence=confidence,
                   budget_w=budget_w, fixed=fixed, plot=not no_plots, progress=progress and sys.stderr.isatty())
    finally:
        runner.close()
    if not no_report:
        write_html_report(out_dir)
    if res.answer is None:
        click.echo(f"no answer: {res.reason} (details: {out_dir}/plan.json)", err=True)
        ctx.exit(1)
    click.echo(format_plan(res))
    click.echo(f"wrote {out_dir}/plan.json" + ("" if no_plots else f", {out_dir}/plan.png")
               + ("" if no_report else f", {out_dir}/report.html"))


def format_plan(res) -> str:
    a = res.at_answer
    lines = ["evaluated: " + ", ".join(f"{s} {'ok' if x.meets_slo else 'fails'}" for s, x in res.evaluated.items())]
    gpus = a.mean("gpus")
    lines.append(f"answer: {res.param} = {res.answer}" + (f" ({gpus:g} GPUs)" if gpus is not None else ""))
    for c in a.checks:
        side = "upper" if c.slo.upper else "lower"
        m = c.slo.margin(c.bound)
        rel = f", {m / abs(c.slo.threshold):.0%} of the threshold" if c.slo.threshold else ""
        lines.append(f"margin: {c.slo.metric} mean {_num(c.mean)}, {side} {res.confidence:.0%} bound "
                     f"{_num(c.bound)} vs {c.slo.op} {c.slo.threshold:g}: {_num(m)} to spare{rel}")
    lines.extend(_power_lines(res, a))
    per = _ratio(a, "gpus", "sim_time_s", "sessions_completed")
    if per is not None:
        lines.append(f"GPU time per completed session: {per:.3g} GPU-s (GPUs x simulated time / sessions), "
                     f"GPU utilisation {_num(_scaled(a.mean('gpu_utilization'), 100), 3)} %")
    if res.non_monotone:
        lines.append(f"warning: {res.param} = {res.non_monotone} above the answer fail the SLO: the metric is not "
                     f"monotone at this noise level; add --seeds or check those sizes")
    return "\n".join(lines)


def _scaled(v: float | None, k: float) -> float | None:
    return None if v is None else v * k


def _ratio(a, x: str, y: str, z: str) -> float | None:
    """Mean over seeds of x·y/z (e.g. GPU-seconds per session); None if a value is missing."""
    vals = []
    for r in a.rows:
        vx, vy, vz = r.get(x), r.get(y), r.get(z)
        if not all(isinstance(v, (int, float)) for v in (vx, vy, vz)) or not vz:
            return None
        vals.append(vx * vy / vz)
    return sum(vals) / len(vals) if vals else None


def _power_lines(res, a) -> list[str]:
    if a.power_source is None:
        return ["power: unavailable (the profile has no power model)"]
    fac = a.power_source == "facility"
    note = "facility" if fac else "GPU only: the summary has no facility_peak_power_w"
    line = f"power: peak {_power(a.budget_peak_power_w)} ({note}, max over seeds)"
    if res.budget_w is not None:
        line += f", budget {_power(res.budget_w)}: {_power(res.budget_w - a.budget_peak_power_w)} to spare"
    avg = f"average {_power(a.mean('gpu_avg_power_w'))} GPU"
    if fac and a.mean("facility_avg_power_w") is not None:
        avg = f"average {_power(a.mean('facility_avg_power_w'))} facility, {_power(a.mean('gpu_avg_power_w'))} GPU"
    lines = [f"{line}; {avg}"]
    e, ef = a.mean("gpu_energy_per_session_j"), a.mean("facility_energy_per_session_j")
    if e is not None:
        text = f"energy per session: {e / 3600:.3g} Wh GPU (busy + idle share)"
        if ef is not None:
            text += f", {ef / 3600:.3g} Wh at the facility"
        lines.append(text)
    return lines
