"""run(scenario, sessions=...): given sessions replay as a trace class of the same sessions would."""
import dataclasses

import pandas as pd
import pytest

from agentwatt.core.errors import InputError
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict
from agentwatt.traces.loaders import bundled_trace_path, load_trace


def _scenario(workload):
    return scenario_from_dict({"name": "t", "run": {"seed": 5, "duration_s": 30, "drain_timeout_s": 120},
                               "fleet": {"replicas": 2}, "workload": workload})


def test_given_sessions_replay_like_the_trace_class():
    trace = _scenario([{"trace": "azure-conv-head2000", "limit": 80}])
    from_trace = run(trace)
    sessions = load_trace("azure-2023", str(bundled_trace_path("azure-conv-head2000")), limit=80)
    given = run(_scenario([{"agent": "synthetic-fixed", "rate_per_s": 1.0}]), sessions=sessions)
    assert len(given.calls) > 0
    pd.testing.assert_frame_equal(from_trace.calls, given.calls)
    pd.testing.assert_frame_equal(from_trace.sessions, given.sessions)


def test_given_sessions_must_come_in_order_of_arrival():
    sessions = list(load_trace("azure-2023", str(bundled_trace_path("azure-conv-head2000")), limit=5))
    sessions[1], sessions[3] = sessions[3], sessions[1]
    with pytest.raises(InputError, match=r"sessions\[2\]: .*expected sessions in order of arrival"):
        run(_scenario([{"agent": "synthetic-fixed", "rate_per_s": 1.0}]), sessions=sessions)


def test_given_sessions_after_the_arrival_window_are_not_started():
    sessions = list(load_trace("azure-2023", str(bundled_trace_path("azure-conv-head2000")), limit=40))
    late = dataclasses.replace(sessions[-1], arrival_s=31.0)
    res = run(_scenario([{"agent": "synthetic-fixed", "rate_per_s": 1.0}]),
              sessions=[s for s in sessions if s.arrival_s <= 30] + [late])
    assert res.summary["sessions_arrived"] == sum(s.arrival_s <= 30 for s in sessions)
