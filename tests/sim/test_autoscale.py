"""Autoscaling ([autoscale], sim/autoscale.py): HPA's rule and stabilisation, warm-up from the weight
bytes and storage bandwidth, power states while stopped and warming, routing only to ready replicas,
drain before stop, never above max or below min, and min = max equal to a static fleet."""
from collections import deque

import numpy as np
import pandas as pd
import pytest

from agentwatt.core import step
from agentwatt.core.errors import InputError
from agentwatt.core.profile import load_profile
from agentwatt.sim.autoscale import busy_seconds, predicted_load, recommend, stabilize, warmup_seconds
from agentwatt.sim.books import ReplicaBooks
from agentwatt.sim.router import Router
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict

# a burst: 0.2 sessions/s, then 3/s for ~200 s on average (mmpp), ReAct agents, 4 replicas at most
BURSTY = {"name": "burst", "profile": "llama-3.1-8b_a100-40gb",
          "run": {"seed": 5, "duration_s": 900.0, "drain_timeout_s": 300.0},
          "fleet": {"replicas": 4},
          "workload": [{"agent": "react-hotpotqa", "arrival": "mmpp",
                        "arrival_params": {"rates_per_s": [0.2, 3.0], "mean_sojourn_s": [250.0, 200.0]}}]}
SCALE = {"target_per_replica": 8, "min_replicas": 1, "interval_s": 10, "scale_down_delay_s": 60}


def _scenario(autoscale=None, **over):
    d = {**BURSTY, **over}
    if autoscale is not None:
        d["autoscale"] = autoscale
    return scenario_from_dict(d, "autoscale-test")


@pytest.fixture(scope="module")
def scaled():
    return run(_scenario(SCALE))


# ---------------------------------------------------------------- pure parts
def test_warmup_is_weight_bytes_over_storage_bandwidth_plus_engine_start():
    m = load_profile("llama-3.1-8b_a100-40gb").model
    # 8.03 B parameters × 2 bytes ≈ 16 GB at 7 GB/s ≈ 2.3 s, plus the engine's 39 s
    assert warmup_seconds(16e9, 7.0, 39.0) == pytest.approx(16 / 7 + 39)
    assert warmup_seconds(m.weight_bytes, 7.0, 0.0) == pytest.approx(m.weight_bytes / 7e9)
    assert 2.0 < warmup_seconds(m.weight_bytes, 7.0, 0.0) < 2.5


def test_recommend_follows_hpa():
    assert recommend(load=50, ready=2, current=2, target=10, lo=1, hi=8) == 5     # ceil(50 / 10)
    assert recommend(load=21, ready=2, current=2, target=10, lo=1, hi=8) == 2     # within 10 %: stay
    assert recommend(load=0, ready=3, current=3, target=10, lo=2, hi=8) == 2      # never below min
    assert recommend(load=1000, ready=3, current=3, target=10, lo=1, hi=8) == 8   # never above max


def test_stabilize_scales_up_at_once_and_down_after_the_window():
    h = deque()
    assert stabilize(h, 0.0, 4, 2, up_s=0.0, down_s=60.0) == 4     # up: no window
    assert stabilize(h, 10.0, 1, 4, up_s=0.0, down_s=60.0) == 4    # down: the window still holds 4
    assert stabilize(h, 59.0, 1, 4, up_s=0.0, down_s=60.0) == 4
    assert stabilize(h, 61.0, 1, 4, up_s=0.0, down_s=60.0) == 1    # 4 has left the window
    h = deque()
    assert stabilize(h, 0.0, 5, 2, up_s=30.0, down_s=0.0) == 5
    h = deque([(0.0, 2)])
    assert stabilize(h, 10.0, 5, 2, up_s=30.0, down_s=0.0) == 2    # up: the lowest of the window


def test_books_book_stopped_then_warming_power():
    b = ReplicaBooks(0, idle_w=60.0, resolution_s=1.0)
    b.stop(0.0, 20.0)
    b.idle_begins(0.0)            # the replica's loop waits for work: a stopped replica is not idle
    b.start(10.0)                 # warming: idle power
    b.close(25.0)
    assert b.stopped_s == 10.0 and b.stopped_energy_j == 200.0
    assert b.idle_energy_j == 60.0 * 15
    assert b.bins.total("energy_j") == pytest.approx(200.0 + 900.0)
    assert b.bins.total("idle_empty_s") == pytest.approx(15.0)


class _Rep:
    def __init__(self, i):
        self.index, self.outstanding, self.on_load = i, 0, None

        class _S:
            waiting = ()
        self.state = _S()


@pytest.mark.parametrize("policy", ["round_robin", "least_loaded", "fewest_queued"])
def test_routers_pick_only_ready_replicas(policy):
    reps = [_Rep(i) for i in range(4)]
    router = Router(reps, policy, session_affinity=True)
    first = router.route(7)
    router.set_ready(first, False)
    router.set_ready(reps[2], False)
    picks = {router.route(s).index for s in range(7, 30)}
    assert picks and first.index not in picks and 2 not in picks     # the session was re-homed
    router.set_ready(reps[2], True)
    assert 2 in {router.route(s).index for s in range(100, 120)} or policy != "round_robin"


# ---------------------------------------------------------------- runs
def test_min_equal_max_is_the_static_fleet_byte_for_byte():
    static = run(_scenario(None, run={**BURSTY["run"], "duration_s": 200.0}))
    pinned = run(_scenario({**SCALE, "min_replicas": 4}, run={**BURSTY["run"], "duration_s": 200.0}))
    assert pinned.summary["autoscale"]["starts"] == 0 and pinned.summary["autoscale"]["stops"] == 0
    pd.testing.assert_frame_equal(static.calls, pinned.calls)
    pd.testing.assert_frame_equal(static.sessions, pinned.sessions)
    pd.testing.assert_frame_equal(static.power, pinned.power)
    a = {k: v for k, v in static.summary.items() if k != "wall_time_s"}
    b = {k: v for k, v in pinned.summary.items() if k not in ("wall_time_s", "autoscale")}
    assert a == b


def test_replicas_stay_within_min_and_max_and_scale_both_ways(scaled):
    s, df = scaled.summary["autoscale"], scaled.scaling
    assert s["starts"] >= 1 and s["stops"] >= 1
    assert (df["ready"] >= 1).all() and ((df["ready"] + df["warming"]) <= 4).all()
    assert (df[["ready", "warming", "draining", "stopped"]].sum(axis=1) == 4).all()
    assert s["ready_replicas"]["max"] > s["ready_replicas"]["min"]
    assert sum(s["replica_hours"].values()) == pytest.approx(4 * scaled.summary["sim_time_s"] / 3600)


def test_calls_go_only_to_ready_replicas_and_drain_before_stop(scaled):
    calls, states = scaled.calls, scaled.replica_states
    # each call's replica's state at its submit time (the last change at or before it)
    at = pd.merge_asof(calls.sort_values("submit_s"), states.sort_values("time_s"), left_on="submit_s",
                       right_on="time_s", by="replica", direction="backward")
    assert len(at) == len(calls) and (at["state"] == "ready").all()
    stops = states[(states["state"] == "stopped") & (states["time_s"] > 0)]
    assert len(stops)
    for st in stops.itertuples():
        on = calls[(calls["replica"] == st.replica) & (calls["submit_s"] < st.time_s)]
        assert (on["finish_s"] <= st.time_s + 1e-9).all()      # its calls finished before it stopped
    assert (calls["status"] == "finished").all()
    c = scaled.summary
    assert c["calls_submitted"] == c["calls_completed"] + c["calls_dropped"] + c["calls_in_flight"]


def test_warmup_and_stopped_power_are_booked(scaled):
    s, sm, prof = scaled.summary["autoscale"], scaled.summary, load_profile("llama-3.1-8b_a100-40gb")
    parked = step.state_power_w(prof, "parked")
    stopped_s = s["replica_hours"]["stopped"] * 3600
    assert s["gpu_stopped_energy_j"] == pytest.approx(parked * stopped_s, rel=1e-9)
    assert s["warmup_s"] == pytest.approx(warmup_seconds(prof.model.weight_bytes, 7.0, 39.0))
    assert s["warmup_gpu_hours"] > 0
    t = scaled.power["time_s"].to_numpy()
    width = np.diff(np.append(t, sm["sim_time_s"]))     # the last bin ends with the run
    gpu_series_j = float((scaled.power["gpu_power_w"].to_numpy() * width).sum())
    assert gpu_series_j == pytest.approx(sm["gpu_energy_j"] + s["gpu_stopped_energy_j"], rel=1e-6)
    assert sm["gpu_state_seconds"]["parked"] == pytest.approx(stopped_s, rel=1e-9)


def test_autoscaling_saves_energy_against_the_static_peak_fleet(scaled):
    static = run(_scenario(None))
    assert scaled.summary["facility_energy_j"] < static.summary["facility_energy_j"]
    assert scaled.summary["sessions_completed"] == static.summary["sessions_completed"]


def test_off_draws_less_than_parked():
    parked = run(_scenario({**SCALE, "stopped_state": "parked"}, run={**BURSTY["run"], "duration_s": 300.0}))
    off = run(_scenario({**SCALE, "stopped_state": "off"}, run={**BURSTY["run"], "duration_s": 300.0}))
    assert off.summary["autoscale"]["gpu_stopped_energy_j"] == 0.0
    assert off.summary["gpu_energy_j"] == pytest.approx(parked.summary["gpu_energy_j"])
    assert off.summary["facility_energy_j"] < parked.summary["facility_energy_j"]


def test_deterministic_by_seed(scaled):
    again = run(_scenario(SCALE))
    pd.testing.assert_frame_equal(scaled.calls, again.calls)
    pd.testing.assert_frame_equal(scaled.scaling, again.scaling)


@pytest.mark.parametrize("table, expected", [
    ({"min_replicas": 1}, r"\[autoscale\] target_per_replica missing"),
    ({**SCALE, "min_replicas": 5}, r"\[autoscale\] min_replicas = 5: expected an integer >= 1 and <= 4"),
    ({**SCALE, "initial_replicas": 0}, r"\[autoscale\] initial_replicas = 0"),
    ({**SCALE, "metric": "gpu"}, r"\[autoscale\] metric = 'gpu': expected one of concurrency, queue"),
    ({**SCALE, "metric": "utilization", "target_per_replica": 80}, r"target_per_replica = 80: expected a share"),
    ({**SCALE, "stopped_state": "idle"}, r"\[autoscale\] stopped_state = 'idle'"),
    ({**SCALE, "warmup": 3}, r"\[autoscale\] unknown key 'warmup'"),
])
def test_bad_autoscale_tables_name_the_field(table, expected):
    with pytest.raises(InputError, match=expected):
        _scenario(table)


def test_parked_needs_a_profile_with_a_parked_level():
    from agentwatt.calibrate.splitwise_reference import llama8b_a100_40gb
    prof = llama8b_a100_40gb()
    with pytest.raises(InputError, match=r"\[autoscale\] stopped_state = 'parked'.*no parked power level"):
        run(_scenario(SCALE, run={**BURSTY["run"], "duration_s": 30.0}), prof)
    assert np.isfinite(run(_scenario({**SCALE, "stopped_state": "off"}, run={**BURSTY["run"], "duration_s": 30.0}),
                           prof).summary["sim_time_s"])


def test_cli_bad_autoscale_and_disaggregation_tables_are_one_line(tmp_path, write_file, cli_process):
    from tests.helpers import CHATBOT_BASE
    for extra, needle in (("[autoscale]\nmin_replicas = 1\n", "[autoscale] target_per_replica missing"),
                          ("[disaggregation]\nprefill_replicas = 1\ndecode_replicas = 1\nlink = \"x\"\n",
                           "[disaggregation] link = 'x'")):
        p = write_file(extra + CHATBOT_BASE.format(replicas=2, rate=1.0))
        r = cli_process("simulate", p, "--out", tmp_path / "o")
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
        assert r.stderr.startswith("error: ") and needle in r.stderr, r.stderr


def test_cli_writes_the_scaling_tables(tmp_path, write_file, cli_process):
    from tests.helpers import CHATBOT_BASE
    p = write_file("[run]\nduration_s = 30\n[autoscale]\ntarget_per_replica = 2\ninterval_s = 5\n"
                   + CHATBOT_BASE.format(replicas=3, rate=3.0))
    r = cli_process("simulate", p, "--out", tmp_path / "o", "--no-plots")
    assert r.returncode == 0, r.stderr
    df = pd.read_parquet(tmp_path / "o" / "scaling.parquet")
    assert list(df.columns) == ["time_s", "end_s", "ready", "warming", "draining", "stopped"]
    assert (tmp_path / "o" / "replica_states.parquet").exists()


def test_churn_takes_back_drains_and_cancels_warmups_within_the_invariants():
    """A 1-s control loop without a scale-down window on a flickering chat load: replicas are taken
    back while draining and stopped while warming up; the invariants of the steady case still hold."""
    wl = [{"agent": "chatbot-sharegpt", "arrival": "mmpp",
           "arrival_params": {"rates_per_s": [1.0, 20.0], "mean_sojourn_s": [10.0, 10.0]}}]
    res = run(_scenario({**SCALE, "interval_s": 1, "scale_down_delay_s": 0, "warmup_s": 5}, workload=wl,
                        run={**BURSTY["run"], "duration_s": 300.0}))
    a, s, df = res.summary["autoscale"], res.summary, res.scaling
    assert a["drains_taken_back"] > 0 and a["cancelled_warmups"] > 0
    assert (df["ready"] >= 1).all() and ((df["ready"] + df["warming"]) <= 4).all()
    at = pd.merge_asof(res.calls.sort_values("submit_s"), res.replica_states.sort_values("time_s"),
                       left_on="submit_s", right_on="time_s", by="replica", direction="backward")
    assert (at["state"] == "ready").all()
    assert s["sessions_completed"] == s["sessions_arrived"]
    # every start is a warm-up that ended ready, was cancelled, or was still running at the end
    ready_after_warm = ((res.replica_states["state"] == "ready") & (res.replica_states["time_s"] > 0)).sum()
    assert a["starts"] + a["drains_taken_back"] >= ready_after_warm
    parked = step.state_power_w(load_profile("llama-3.1-8b_a100-40gb"), "parked")
    assert a["gpu_stopped_energy_j"] == pytest.approx(parked * a["replica_hours"]["stopped"] * 3600, rel=1e-9)


def test_scenario_round_trips():
    from agentwatt import scenario_to_dict
    sc = _scenario({**SCALE, "stopped_state": "off", "warmup_s": 12.5})
    assert scenario_from_dict(scenario_to_dict(sc), sc.source) == sc


def test_predicted_load_extrapolates_one_warmup_ahead():
    assert predicted_load(10, None, 15, 40) == 10                    # no trend yet
    assert predicted_load(20, 10, 10, 40) == pytest.approx(60)       # +1 per s for 40 s
    assert predicted_load(10, 30, 10, 40) == 0                       # falling: never below 0


def test_busy_seconds_count_the_step_in_flight():
    b = ReplicaBooks(0, idle_w=None, resolution_s=1.0)

    class _Cost:
        seconds, clock_fraction, watts = 2.0, 1.0, None
    b.step_begins(10.0, _Cost(), 0)
    assert busy_seconds(b, 11.5) == pytest.approx(1.5)
    b.in_flight = (10.0, _Cost(), None, 0)

    class _Plan:
        prefill_tokens, decode_seqs, tokens, items = 1, 0, 1, []
    b.step_ends(_Plan())
    assert busy_seconds(b, 13.0) == pytest.approx(2.0)


@pytest.mark.parametrize("metric, target", [("utilization", 0.6), ("predicted", 8), ("queue", 1)])
def test_every_metric_scales_within_the_bounds(metric, target):
    res = run(_scenario({**SCALE, "metric": metric, "target_per_replica": target},
                        run={**BURSTY["run"], "duration_s": 400.0}))
    a, df = res.summary["autoscale"], res.scaling
    assert a["starts"] >= 1
    assert (df["ready"] >= 1).all() and ((df["ready"] + df["warming"]) <= 4).all()
    assert res.summary["sessions_completed"] == res.summary["sessions_arrived"]
