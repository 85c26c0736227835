"""Sweeps in-process: --set and sweep-file parsing, the resumable store, interruption, uncertainty."""
import json
import math

import numpy as np
import pytest
from scipy import stats

from agentwatt.core.errors import InputError
from agentwatt.plan.store import ResultStore, flatten
from agentwatt.plan.sweep import Grid, build_grid, parse_set, run_specs, sweep
from agentwatt.plan.uncertainty import mean_ci, one_sided_bound, summarize_sweep
from tests.helpers import tiny_scenario

TINY = tiny_scenario(seed=5, rate_per_s=0.5)


@pytest.fixture
def scenario(write_file):
    return write_file(TINY, "tiny.toml")


def _strip(table):
    return table.drop(columns=["wall_time_s"]).reset_index(drop=True)


# ------------------------------------------------------------------------------ parsing

def test_set_values_are_toml_scalars():
    assert parse_set("fleet.replicas=4,8,16") == ("fleet.replicas", (4, 8, 16))
    key, values = parse_set('x.y=1.5, true, "a,b", round_robin, 1e3')
    assert key == "x.y"
    assert values == (1.5, True, "a,b", "round_robin", 1000.0)
    assert [type(v) for v in values] == [float, bool, str, str, float]


@pytest.mark.parametrize("arg,msg", [
    ("fleet.replicas", "expected KEY=V1,V2,..."),
    ("=4", "expected KEY=V1,V2,..."),
    ("fleet.replicas=4,,8", "empty value"),
    ("fleet.replicas=4,", "empty value"),
    ("fleet.replicas=4,4", "value 4 repeated"),
    ("fleet.replicas=[1,2]", "'[1' is not a TOML scalar"),
    ("workload.0.rate_per_s=nan", "expected a finite number"),
    ("fleet.replicas=1979-05-27", "is a TOML date"),
    ("fleet..replicas=1", "expected a dotted scenario key"),
    ("run.seed=1,2", "use --seeds N"),
])
def test_set_errors_are_one_line_and_name_the_flag(arg, msg):
    with pytest.raises(InputError) as e:
        parse_set(arg)
    text = str(e.value)
    assert text.startswith(f"--set {arg}: ") and msg in text and "\n" not in text


def test_grid_is_the_cartesian_product_and_set_replaces_file_keys(tmp_path):
    f = tmp_path / "sweep.toml"
    f.write_text('seeds = 4\n[grid]\nfleet.replicas = [1, 2]\n"workload.0.rate_per_s" = [0.5, 1.0]\n')
    g = build_grid([], f)
    assert g.params == {"fleet.replicas": (1, 2), "workload.0.rate_per_s": (0.5, 1.0)} and g.seeds == 4
    assert g.points() == [{"fleet.replicas": 1, "workload.0.rate_per_s": 0.5},
                          {"fleet.replicas": 1, "workload.0.rate_per_s": 1.0},
                          {"fleet.replicas": 2, "workload.0.rate_per_s": 0.5},
                          {"fleet.replicas": 2, "workload.0.rate_per_s": 1.0}]
    g = build_grid(["fleet.replicas=3"], f, seeds=2)
    assert g.params["fleet.replicas"] == (3,) and g.seeds == 2
    assert Grid(params={}).points() == [{}]


@pytest.mark.parametrize("text,msg", [
    ("[grid]\nfleet.replicas = 4\n", "[grid] fleet.replicas = 4: expected an array"),
    ("[grid]\nfleet.replicas = [[1]]\n", "[grid] fleet.replicas: value [1]: expected finite numbers"),
    ("seeds = 0\n", "seeds = 0: expected an integer >= 1"),
    ("grids = 1\n", "unknown key 'grids': expected grid, seeds"),
    ("[grid\n", "invalid TOML"),
])
def test_sweep_file_errors_name_the_file(tmp_path, text, msg):
    f = tmp_path / "sweep.toml"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        build_grid([], f)
    assert str(e.value).startswith(str(f)) and msg in str(e.value)


def test_set_twice_and_bad_seeds():
    with pytest.raises(InputError, match=r"^--set fleet.replicas=2: fleet.replicas given twice"):
        build_grid(["fleet.replicas=1", "fleet.replicas=2"])
    with pytest.raises(InputError, match=r"^--seeds 0: expected an integer >= 1"):
        build_grid(["fleet.replicas=1"], seeds=0)


def test_values_are_validated_against_the_scenario_before_running(scenario):
    with pytest.raises(InputError) as e:
        run_specs(str(scenario), build_grid(["fleet.replicas=2,0"]))
    assert str(e.value) == (f"--set fleet.replicas=0: {scenario}: [fleet] replicas = 0: "
                            f"expected an integer >= 1 and <= 1000000")
    with pytest.raises(InputError, match=r"^--set fleet.replica=2: .*unknown key 'replica'"):
        run_specs(str(scenario), build_grid(["fleet.replica=2"]))


def test_cli_set_error_is_one_line_exit_2(scenario, tmp_path, run_cli):
    r = run_cli(["sweep", scenario, "--set", "fleet.replicas=1,two!", "--out", tmp_path / "o", "--serial"], obj={})
    assert r.exit_code == 2
    assert r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("error: --set fleet.replicas=1,two!: 'two!' is not a TOML scalar")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------ uncertainty

def test_mean_ci_is_the_t_interval():
    x = [3.0, 5.0, 0.0, 8.0]          # a zero: not all positive, so the plain t interval of the mean
    ci = mean_ci(x, 0.9)
    lo, hi = stats.t.interval(0.9, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert (ci.n, ci.mean, ci.method) == (4, 4.0, "t")
    assert ci.ci_low == pytest.approx(lo) and ci.ci_high == pytest.approx(hi)
    assert one_sided_bound(x, 0.95) == pytest.approx(hi)          # one-sided 95 % = edge of two-sided 90 %
    assert one_sided_bound(x, 0.95, upper=False) == pytest.approx(lo)
    assert math.isnan(one_sided_bound([2.0], 0.9))
    one = mean_ci([2.0, None, float("nan")])
    assert one.n == 1 and one.mean == 2.0 and math.isnan(one.ci_low) and math.isnan(one.std)


def test_interval_of_a_positive_metric_stays_positive():
    """Issue 17: a 2-seed t interval of a latency printed a negative lower bound. Positive values get
    the t interval of their logarithms mapped back: above zero, the geometric mean inside."""
    x = [10.0, 30.0]
    lo_t, _ = stats.t.interval(0.95, 1, loc=np.mean(x), scale=stats.sem(x))
    assert lo_t < 0                                                   # the defect: a negative latency
    ci = mean_ci(x, 0.95)
    lx = np.log(x)
    lo, hi = np.exp(stats.t.interval(0.95, 1, loc=lx.mean(), scale=stats.sem(lx)))
    assert ci.method == "log-t" and ci.n == 2 and ci.mean == 20.0
    assert ci.ci_low == pytest.approx(lo) and ci.ci_high == pytest.approx(hi) and ci.ci_low > 0
    assert ci.ci_low < math.sqrt(10.0 * 30.0) < ci.ci_high
    assert one_sided_bound(x, 0.975, upper=False) == pytest.approx(lo)
    assert one_sided_bound(x, 0.975) == pytest.approx(hi)


# ------------------------------------------------------------------------------ sweeps

def test_sweep_table_and_summary(scenario, tmp_path):
    grid = build_grid(["fleet.replicas=1,2", "workload.0.rate_per_s=0.5,1"], seeds=2)
    res = sweep(scenario, grid, tmp_path / "s", plots=True)
    t = res.table
    assert len(t) == 8 and t["key"].is_unique and res.runs_done_now == 8
    assert sorted(t["seed"].unique()) == [5, 6]
    for col in ("param.fleet.replicas", "param.workload.0.rate_per_s", "session_e2e_s.p99",
                "by_agent.react-hotpotqa.session_e2e_s.p99", "gpu_peak_power_w", "gpus"):
        assert col in t.columns
    assert list(t["param.fleet.replicas"]) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert (t["gpus"] == t["param.fleet.replicas"]).all()
    s = res.summary
    assert set(s.columns) >= {"point", "param.fleet.replicas", "metric", "n", "mean", "std", "ci_low", "ci_high"}
    p99 = s[s["metric"] == "session_e2e_s.p99"]
    assert len(p99) == 4 and (p99["n"] == 2).all()
    assert (p99["ci_low"] <= p99["mean"]).all() and (p99["mean"] <= p99["ci_high"]).all()
    first = t[t["point"] == p99["point"].iloc[0]]["session_e2e_s.p99"]
    assert p99["mean"].iloc[0] == pytest.approx(first.mean())
    assert "seed" not in set(s["metric"])
    for name in ("sweep.parquet", "sweep_summary.parquet", "sweep.json", "sweep_metric.png", "sweep_pareto.png",
                 "sweep_power_load.png"):
        assert (tmp_path / "s" / name).stat().st_size > 0
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["complete"] is True


def test_rerun_skips_finished_and_extends_a_subset(scenario, tmp_path):
    out = tmp_path / "s"
    sweep(scenario, build_grid(["fleet.replicas=1,2"], seeds=2), out, plots=False)
    again = sweep(scenario, build_grid(["fleet.replicas=1,2"], seeds=2), out, plots=False)
    assert again.runs_done_now == 0 and len(again.table) == 4
    wider = sweep(scenario, build_grid(["fleet.replicas=1,2,3"], seeds=2), out, plots=False)
    assert wider.runs_done_now == 2 and len(wider.table) == 6 and wider.table["key"].is_unique
    assert len(list((out / "points").glob("*.json"))) == 6


def test_interrupted_sweep_keeps_finished_runs_and_resumes(scenario, tmp_path):
    grid = build_grid(["fleet.replicas=1,2,3"], seeds=2)

    def stop_after_3(spec, n):
        if n == 3:
            raise KeyboardInterrupt

    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        sweep(scenario, grid, out, on_run=stop_after_3)
    assert len(list((out / "points").glob("*.json"))) == 3
    assert not list((out / "points").glob("*.tmp"))
    partial = ResultStore(out).table(run_specs(str(scenario.resolve()), grid))
    assert len(partial) == 3
    res = sweep(scenario, grid, out, plots=False)
    assert res.runs_done_now == 3 and len(res.table) == 6 and res.table["key"].is_unique
    clean = sweep(scenario, grid, tmp_path / "clean", plots=False)
    assert _strip(res.table).equals(_strip(clean.table))


def test_store_rejects_a_corrupt_point_file(scenario, tmp_path):
    grid = build_grid(["fleet.replicas=1"], seeds=1)
    out = tmp_path / "s"
    sweep(scenario, grid, out, plots=False)
    (f,) = (out / "points").glob("*.json")
    f.write_text("{not json")
    with pytest.raises(InputError, match=r"unreadable point file .* delete it to rerun that point"):
        sweep(scenario, grid, out, plots=False)


def test_editing_the_scenario_does_not_reuse_stale_points(scenario, tmp_path):
    grid = build_grid(["fleet.replicas=1"], seeds=1)
    out = tmp_path / "s"
    sweep(scenario, grid, out, plots=False)
    scenario.write_text(TINY.replace("duration_s = 20", "duration_s = 21"))
    res = sweep(scenario, grid, out, plots=False)
    assert res.runs_done_now == 1 and len(res.table) == 1 and res.table["arrivals_end_s"].iloc[0] == 21


def test_flatten_keeps_scalars_under_dotted_names():
    flat = flatten({"a": 1, "b": {"c": None, "d": {"e": "x"}}, "notes": ["n"], "ok": True})
    assert flat == {"a": 1, "b.c": None, "b.d.e": "x", "ok": True}


def test_summary_of_one_seed_has_no_interval(scenario, tmp_path):
    res = sweep(scenario, build_grid(["fleet.replicas=1"], seeds=1), tmp_path / "s", plots=False)
    row = res.summary[res.summary["metric"] == "session_e2e_s.p99"].iloc[0]
    assert row["n"] == 1 and math.isnan(row["ci_low"]) and math.isnan(row["std"])
    assert summarize_sweep(res.table.iloc[0:0]).empty


def test_cli_sweep_end_to_end_and_resume(scenario, tmp_path, run_cli):
    args = ["sweep", str(scenario), "--set", "fleet.replicas=1,2", "--seeds", "2", "--out", str(tmp_path / "o"),
            "--serial", "--no-plots"]
    r = run_cli(args, obj={})
    assert r.exit_code == 0, r.output
    assert "2 point(s) x 2 seed(s) = 4 runs, 0 already in" in r.stdout
    assert "fleet.replicas=1" in r.stdout and "session_e2e_s.p99" in r.stdout
    r = run_cli(args, obj={})
    assert r.exit_code == 0 and "4 already in" in r.stdout and "running 0" in r.stdout


def test_one_run_is_stored_once_whether_a_number_is_written_1_or_1_0():
    from agentwatt.plan.store import point_id, point_key
    assert point_key("s", {"workload.0.rate_per_s": 1}, 3) == point_key("s", {"workload.0.rate_per_s": 1.0}, 3)
    assert point_id("s", {"a": 2.0}) == point_id("s", {"a": 2}) != point_id("s", {"a": 2.5})
    assert point_key("s", {"a": True}, 1) != point_key("s", {"a": 1}, 1)   # a bool is not a number here
    assert point_key("s", {}, 1) != point_key("s", {}, 1, "abc")            # referenced files count


def test_editing_a_referenced_profile_or_trace_does_not_reuse_stale_points(tmp_path):
    import json as _json

    from agentwatt.core.profile import load_profile
    from agentwatt.plan.sweep import build_grid, run_specs
    prof = tmp_path / "p.json"
    prof.write_text(_json.dumps(load_profile("llama-3.1-8b_a100-40gb").to_dict()))
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n")
    sc = tmp_path / "s.toml"
    sc.write_text('profile = "p.json"\n[run]\nduration_s = 5\n[[workload]]\ntrace = "t.csv"\n')
    grid = build_grid(["fleet.replicas=1,2"], seeds=1)
    keys = [s.key for s in run_specs(str(sc), grid)]
    assert len(set(keys)) == 2 and keys == [s.key for s in run_specs(str(sc), grid)]   # stable
    d = load_profile(prof)
    prof.write_text(_json.dumps({**d.to_dict(), "name": "recalibrated"}))               # same path, new content
    after_profile = [s.key for s in run_specs(str(sc), grid)]
    assert not set(after_profile) & set(keys)
    trace.write_text(trace.read_text() + "2023-11-16 18:15:47.0,10,5\n")
    assert not set(s.key for s in run_specs(str(sc), grid)) & set(after_profile)
