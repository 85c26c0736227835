"""The ``agentwatt`` command. User errors print one line (``error: ...``) and exit 2;
``--debug`` shows the traceback instead.

Commands share flag names (``cli/options.py``): ``--out`` (where results go), ``--no-plots``,
``--set KEY=VALUE`` (scenario overrides by dotted key). Shell completion is click's:
``eval "$(_AGENTWATT_COMPLETE=bash_source agentwatt)"`` (``zsh_source``, ``fish_source``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from agentwatt.cli.options import SEED_RANGE, finite_float, no_plots_option, no_report_option, out_option, set_option
from agentwatt.core.errors import AgentwattError


class AgentwattGroup(click.Group):
    def main(self, *args, **kwargs):
        """Usage errors (a bad flag or value) print one line, not click's usage block."""
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.UsageError as e:
            where = f"{e.ctx.command_path}: " if e.ctx is not None else ""
            click.echo(f"error: {where}{e.format_message()}", err=True)
            sys.exit(2)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        if isinstance(rv, int) and rv != 0:
            sys.exit(rv)
        return rv

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AgentwattError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: files already written are complete (written atomically)", err=True)
            ctx.exit(130)
        except MemoryError:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo("error: out of memory: the run needs more memory than this machine has: expected fewer "
                       "replicas or sessions, a smaller KV cache or a shorter run", err=True)
            ctx.exit(2)


@click.group(cls=AgentwattGroup)
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.version_option(package_name="agentwatt")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """agentwatt: what serving AI agents costs a datacenter (GPUs, power, queueing, tail latency)."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@main.command()
@click.argument("scenario", required=False, type=click.Path(dir_okay=False, path_type=Path))
@set_option
@click.option("--seed", type=SEED_RANGE, default=None, help="Override the scenario's seed.")
@out_option(Path("results"), "Folder for summary.json, Parquet tables and PNG plots.")
@no_plots_option
@no_report_option
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="[site] cells: run the cells on this running Dask cluster.")
@click.option("--workers", type=int, default=None,
              help="[site] cells: local Dask workers (processes, 1 thread each); default one per core.")
@click.option("--serial", is_flag=True, help="[site] cells: run the cells one after another in this process.")
def simulate(scenario: Path | None, sets: tuple[str, ...], seed: int | None, out_dir: Path, no_plots: bool,
             no_report: bool, scheduler: str | None, workers: int | None, serial: bool) -> None:
    """Simulate SCENARIO (a TOML file; the built-in default scenario when omitted)."""
    from agentwatt.cli.options import load_with_sets
    from agentwatt.sim.output import check_results_folder, write_results
    from agentwatt.sim.run import run
    sc = load_with_sets(scenario, sets)
    if seed is not None:
        sc = sc.with_seed(seed)
    check_results_folder(out_dir)   # before the run, not after it
    click.echo(f"scenario: {sc.name} ({sc.source}), profile {sc.profile}, {sc.fleet.replicas} replica(s), "
               f"seed {sc.run.seed}, arrivals for {sc.run.duration_s:g} s")
    if sc.site.cells > 1:
        from agentwatt.plan.runners import open_runner
        from agentwatt.sim.cells import run_cells
        runner = open_runner(scheduler, workers, serial)
        try:
            click.echo(f"{sc.site.cells} cells on {runner.describe()}")
            res = run_cells(sc, client=getattr(runner, "client", None))
        finally:
            runner.close()
    else:
        res = run(sc, progress=sys.stderr.isatty())
    written = write_results(res, out_dir, plots=not no_plots)
    if not no_report:
        from agentwatt.cli.options import write_html_report
        written["report"] = write_html_report(out_dir)
    click.echo(format_summary(res.summary))
    if res.summary["calls_dropped"]:
        click.echo(f"warning: {res.summary['calls_dropped']} LLM call(s) dropped: prompt + output longer than a "
                   f"replica's KV cache ({res.summary['kv_capacity_tokens_per_replica']} tokens); their sessions "
                   f"were abandoned", err=True)
    click.echo(f"wrote {len(written)} files to {out_dir}/: " + ", ".join(p.name for p in written.values()))


def _fmt(v, unit: str = "", scale: float = 1.0, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    return f"{v * scale:.{digits}g}{unit}"


def format_summary(s: dict) -> str:
    lines = []
    prof = s["profile"]
    lines.append(f"profile: {prof['name']} ({prof['source']}), {s['replicas']} replica(s), {s['gpus']} GPU(s)")
    lines.append(f"simulated {s['sim_time_s']:.1f} s in {s['wall_time_s']:.1f} s wall; "
                 f"sessions {s['sessions_completed']}/{s['sessions_arrived']} completed "
                 f"({s['sessions_in_flight']} in flight, {s['sessions_dropped']} dropped); "
                 f"LLM calls {s['calls_completed']}/{s['calls_submitted']}")
    from agentwatt.sim.labels import stat_words
    from agentwatt.sim.report import pct_key
    stats = ["mean", *(pct_key(p) for p in s.get("percentiles", (50, 90, 99)))]
    lines.append(f"{'metric':<16}" + "".join(f"{stat_words(k):>10}" for k in stats))
    for key, label in (("queue_s", "queue s"), ("ttft_s", "TTFT s"), ("tpot_s", "TPOT ms"),
                       ("call_e2e_s", "call e2e s"), ("session_e2e_s", "session e2e s")):
        d = s.get(key) or {}
        scale = 1e3 if key == "tpot_s" else 1.0
        lines.append(f"{label:<16}" + "".join(f"{_fmt(d.get(k), scale=scale):>10}" for k in stats))
    mw = s.get("metrics_window") or {}
    if mw.get("steady_state"):
        lines.append(f"steady state: latencies, throughput and power over {mw['start_s']:.0f}-{mw['end_s']:.0f} s "
                     f"(warm-up and drain left out)")
    tp = s.get("throughput") or {}
    if tp.get("calls_per_s") is not None:
        lines.append(f"throughput {_fmt(tp['sessions_per_s'])} sessions/s, {_fmt(tp['calls_per_s'])} calls/s, "
                     f"{_fmt(tp['output_tokens_per_s'])} output tokens/s "
                     f"({_fmt(tp['output_tokens_per_s_per_gpu'])} per GPU)")
    lines.append(f"GPU utilisation {_fmt(s['gpu_utilization'], '%', 100)}, prefix-cache hit rate "
                 f"{_fmt(s['prefix_cache_hit_rate'], '%', 100)}, KV peak {_fmt(s['kv_peak_utilization'], '%', 100)}, "
                 f"preemptions {s['preemptions']}")
    if s.get("energy_available"):
        lines.append(f"GPU energy {_fmt(s['gpu_energy_j'], ' kJ', 1e-3)} (idle {_fmt(s['gpu_idle_energy_j'], ' kJ', 1e-3)}), "
                     f"avg power {_fmt(s['gpu_avg_power_w'], ' W')}, peak {_fmt(s['gpu_peak_power_w'], ' W')}, "
                     f"energy/session {_fmt(s['gpu_energy_per_session_j'], ' Wh', 1 / 3600)} "
                     f"({_fmt(s['gpu_energy_per_session_with_idle_j'], ' Wh', 1 / 3600)} with idle), "
                     f"{_fmt(s.get('gpu_energy_per_output_token_j'), ' J')}/output token "
                     f"({_fmt(s.get('gpu_energy_per_token_j'), ' J')}/token)")
        fp, pv = s["facility_power"], s["provisioning"]
        lines.append(f"facility (GPUs + hosts + network) × PUE: {_fmt(fp['mean_w'], ' kW', 1e-3)} average, "
                     f"{_fmt(fp['p95_w'], ' kW', 1e-3)} P95, {_fmt(fp['peak_w'], ' kW', 1e-3)} peak; nameplate "
                     f"{_fmt(pv['nameplate_facility_w'], ' kW', 1e-3)}; "
                     f"{_fmt(s['facility_energy_per_session_j'], ' Wh', 1 / 3600)}/session at the facility")
        split = s["gpu_time_split"]
        tot = sum(split.values()) or 1.0
        lines.append(f"GPU time: busy {_fmt(split['busy_s'] / tot, '%', 100)}, idle waiting on tools "
                     f"{_fmt(split['idle_tool_s'] / tot, '%', 100)}, idle empty {_fmt(split['idle_empty_s'] / tot, '%', 100)}")
    else:
        lines.append(f"energy: unavailable ({s.get('energy_unavailable_reason')})")
    for agent, a in s.get("by_agent", {}).items():
        e2e = a["session_e2e_s"]
        lines.append(f"  {agent:<22} sessions {a['sessions_completed']:>6}, calls/session "
                     f"{_fmt(a['llm_calls_per_session'])}, e2e p50 {_fmt(e2e['p50'])} s p99 {_fmt(e2e['p99'])} s, "
                     f"energy/session {_fmt(a['gpu_energy_per_session_j'], ' Wh', 1 / 3600)}")
    lines += [f"warning: {w}" for w in s.get("warnings", [])]
    return "\n".join(lines)


@main.command("report")
@click.argument("folder", type=click.Path(path_type=Path))
def report_cmd(folder: Path) -> None:
    """Write FOLDER/report.html: one self-contained, interactive HTML file (opens offline) for a folder
    written by simulate, sweep or plan."""
    from agentwatt.cli.options import write_html_report
    click.echo(f"wrote {write_html_report(folder)}")


@main.group("power")
def power_grp() -> None:
    """Power traces: compare a measured series with a simulated one."""


@power_grp.command("compare")
@click.argument("measured", type=click.Path(path_type=Path))
@click.argument("simulated", type=click.Path(path_type=Path))
@click.option("--measured-column", default=None, help="Power column of MEASURED (default power_w/gpu_power_w).")
@click.option("--simulated-column", default=None, help="Power column of SIMULATED (default gpu_power_w).")
@click.option("--shift-s", type=float, default=0.0, help="Add this to the simulated times before matching.")
@click.option("--dcgm-interval-ms", type=click.FloatRange(min=0, min_open=True), default=1000.0, show_default=True,
              help="Sampling interval of a dcgmi dmon MEASURED file (its -d; dmon writes no times).")
def power_compare(measured: Path, simulated: Path, measured_column, simulated_column, shift_s: float,
                  dcgm_interval_ms: float) -> None:
    """Energy error, ACF R², KS distance and P95/P99 error on matched 1 s means.

    MEASURED: our CSV/Parquet (time_s or timestamp, power_w), nvidia-smi --query-gpu CSV, dcgmi dmon
    output or a Zeus power-timeline JSON (GPUs summed); SIMULATED: a results folder or its power.parquet."""
    from agentwatt.validate.powercompare import compare, read_power_series
    mt, mw = read_power_series(measured, measured_column, dcgm_interval_s=dcgm_interval_ms / 1e3)
    st, sw = read_power_series(simulated, simulated_column)
    r = compare(mt, mw, st + shift_s, sw)
    click.echo(f"compared {r['seconds_compared']} s of 1 s means")
    click.echo(f"energy error   {r['energy_error_pct']:+.2f} %  (measured {r['energy_measured_j'] / 3600:.4g} Wh, "
               f"simulated {r['energy_simulated_j'] / 3600:.4g} Wh)")
    click.echo(f"ACF R²         {r['acf_r2']:.3f}  (lags 1..{r['acf_lags_s']} s)")
    click.echo(f"KS distance    {r['ks_distance']:.3f}")
    click.echo(f"P95 error      {r['p95_error_pct']:+.2f} %")
    click.echo(f"P99 error      {r['p99_error_pct']:+.2f} %")


@main.command("project")
@click.argument("scenario", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--queries-per-day", type=click.FloatRange(min=0, min_open=True), required=True, callback=finite_float)
@set_option
@click.option("--seed", type=SEED_RANGE, default=None, help="Override the scenario's seed.")
@out_option(None, "Folder for project.json (the numbers printed, and their assumptions).")
def project_cmd(scenario: Path | None, queries_per_day: float, sets: tuple[str, ...], seed: int | None,
                out_dir: Path | None) -> None:
    """Scale SCENARIO's cluster to QUERIES_PER_DAY; print it beside the paper's formula."""
    from agentwatt.cli.options import load_with_sets
    from agentwatt.core.io import atomic_write_json
    from agentwatt.plan.project import project
    from agentwatt.sim.report import json_clean
    sc = load_with_sets(scenario, sets)
    if seed is not None:
        sc = sc.with_seed(seed)
    if out_dir is not None:
        from agentwatt.core.io import check_out_folder
        check_out_folder(out_dir)
    r = project(sc, queries_per_day)
    if "error" in r:
        raise AgentwattError(r["error"])
    pf, sm = r["paper_formula"], r["simulated"]
    click.echo(f"{queries_per_day:.4g} queries/day")
    click.echo(f"paper's formula: {pf['wh_per_query_alone']:.4g} Wh/query alone × queries/day ÷ 24 h = "
               f"{pf['power_w'] / 1e6:.4g} MW")
    click.echo(f"  assumes: {pf['assumptions']}")
    click.echo(f"simulated: {sm['replicas']} replicas = {sm['gpus']} GPUs in {sm['servers']} servers; facility "
               f"{sm['facility_avg_power_w'] / 1e6:.4g} MW average, {sm['facility_p95_power_w'] / 1e6:.4g} MW P95 "
               f"(GPUs alone {sm['gpu_avg_power_w'] / 1e6:.4g} MW); {sm['facility_wh_per_query']:.4g} Wh/query at the "
               f"facility; session p99 {sm['session_e2e_p99_s']:.3g} s")
    click.echo(f"  assumes: {sm['assumptions']}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = atomic_write_json(out_dir / "project.json", json_clean(r))
        click.echo(f"wrote {path}")


@main.command("profiles")
def profiles_cmd() -> None:
    """List the bundled profiles, and how a profile is derived for any catalog model on any catalog GPU."""
    from agentwatt.core.derive import derive_power, fits_for
    from agentwatt.core.gpus import GPUS
    from agentwatt.core.models import catalog
    from agentwatt.core.profile import bundled_profile_names, load_profile
    click.echo("bundled (built from published measurements; held-out error of the end-to-end runs):")
    for n in bundled_profile_names():
        p = load_profile(n)
        fit = p.latency.fit
        err = f"held-out MAPE {100 * fit.holdout_mape:.1f} %" if fit and fit.holdout_mape is not None else "no held-out error"
        click.echo(f"  {n:<28} {p.hardware.device_name} ×{p.hardware.tp}, {p.model.name}: {err}")
    click.echo("derived on request: <model>_[<N>x]<gpu>[_fp8], e.g. mixtral-8x7b_2xh100 or qwen2.5-72b_4xb200_fp8")
    click.echo(f"  models: {', '.join(sorted(catalog()))}")
    for key, g in GPUS.items():
        if g.kind != "gpu":
            continue
        _, _, how = fits_for(key)
        click.echo(f"  {key:<10} {how}; {derive_power(key)[1]}")


def _attach() -> None:
    from agentwatt.cli.calibrate import calibrate_cmd   # torch-free until a measuring command runs
    from agentwatt.cli.paper import paper_cmd
    from agentwatt.cli.plan import plan_cmd, sweep_cmd
    from agentwatt.cli.workload import workload_cmd
    main.add_command(calibrate_cmd, "calibrate")
    main.add_command(workload_cmd, "workload")
    main.add_command(sweep_cmd, "sweep")
    main.add_command(plan_cmd, "plan")
    main.add_command(paper_cmd, "paper")


_attach()

if __name__ == "__main__":
    main(prog_name="agentwatt")
