"""`[run] step_trace = true`: one row per engine step, written as steps.csv; decode blocks expand to
their k steps from the closed form, so the trace equals the one of a step-by-step run."""
from __future__ import annotations

import numpy as np
import pytest

from agentwatt.core.errors import InputError
from agentwatt.core.profile import load_profile
from agentwatt.core.steptrace import COLUMNS, read_step_trace
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict


def _scenario(step_trace: bool = True, step_skipping: bool = True, replicas: int = 2, **run_keys):
    return scenario_from_dict({
        "name": "step trace", "profile": "llama-3.1-8b_h100",
        "run": {"seed": 5, "duration_s": 20, "drain_timeout_s": 300, "step_trace": step_trace, **run_keys},
        "fleet": {"replicas": replicas},
        "engine": {"max_num_seqs": 32, "max_num_batched_tokens": 1024, "step_skipping": step_skipping},
        "workload": [{"agent": "chatbot-sharegpt", "rate_per_s": 3.0}, {"agent": "react-hotpotqa", "rate_per_s": 1.0}],
    })


def test_step_trace_is_off_by_default_and_validated():
    sc = scenario_from_dict({"workload": [{"agent": "chatbot-sharegpt", "rate_per_s": 1.0}]})
    assert sc.run.step_trace is False
    with pytest.raises(InputError, match=r"\[run\] step_trace = 1: expected true or false"):
        scenario_from_dict({"run": {"step_trace": 1}, "workload": [{"agent": "chatbot-sharegpt", "rate_per_s": 1.0}]})


def test_no_trace_no_steps_file(tmp_path):
    res = run(_scenario(step_trace=False, replicas=1))
    assert res.steps is None
    assert "steps" not in res.write(tmp_path, plots=False) and not (tmp_path / "steps.csv").exists()


def test_trace_rows_add_up_to_the_books_and_equal_a_step_by_step_run(tmp_path):
    res = run(_scenario())
    slow = run(_scenario(step_skipping=False))
    st, ref = res.steps, slow.steps
    assert list(st.columns) == [*COLUMNS, "replica"] and len(st) > 1000
    counters = res.summary
    assert int(st["decode_seqs"].sum()) > 0 and int(st["prefill_tokens"].sum()) > 0
    # the step-skipping run's rows (decode blocks expanded) are the step-by-step run's rows
    assert len(st) == len(ref)
    for c in COLUMNS:
        assert np.allclose(st[c].to_numpy(), ref[c].to_numpy(), rtol=1e-9, atol=1e-9), c
    # every step's time is the profile's, and the rows' joules are the replicas' busy joules
    prof = load_profile("llama-3.1-8b_h100")
    pred = [prof.latency.step_s(*r) for r in st[["prefill_tokens", "prefill_attn", "decode_seqs", "decode_ctx"]].to_numpy()]
    assert np.allclose(pred, st["duration_s"], rtol=1e-9)
    assert st["energy_j"].sum() == pytest.approx(counters["gpu_busy_energy_j"], rel=1e-6)   # summary rounds
    # steps of one replica do not overlap
    for _, g in st.groupby("replica"):
        s, d = g["start_s"].to_numpy(), g["duration_s"].to_numpy()
        assert np.all(s[1:] >= s[:-1] + d[:-1] - 1e-9)
    # steps.csv reads back as the same rows
    written = res.write(tmp_path, plots=False)
    tr = read_step_trace(written["steps"])
    assert len(tr) == len(st) and tr.energy_rows == len(st)
    assert np.allclose([r[1] for r in tr.rows], st["duration_s"], rtol=1e-15)


def test_the_trace_changes_no_simulated_number():
    on, off = run(_scenario(replicas=1)), run(_scenario(step_trace=False, replicas=1))
    a, b = dict(on.summary), dict(off.summary)
    for s in (a, b):
        s.pop("wall_time_s", None)
    assert a == b
