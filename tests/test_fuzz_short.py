"""Short fuzz profile for CI: every parser and the scenario builder either runs an input or
rejects it with a one-line AgentwattError, and valid generated inputs (scenarios, traces of every
loader, profiles) run, round-trip and give sane results. The long profile is benchmarks/fuzz.py.

Fresh inputs every run: the seed is random unless ``AGENTWATT_FUZZ_SEED`` is set, and it is part
of every test's id (``[fuzz-seed=N]``), so a failure names it; rerun with
``AGENTWATT_FUZZ_SEED=N python -m pytest tests/test_fuzz_short.py``. Hypothesis also prints the
failing example (and a ``@reproduce_failure`` blob)."""
import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from agentwatt.core.profile import load_profile
from agentwatt.traces.loaders import LOADERS
from benchmarks.fuzzing import targets as F  # benchmarks/fuzzing/ (repository root on sys.path: conftest.py)
from benchmarks.fuzzing import valid as V

FUZZ_SEED = int(os.environ.get("AGENTWATT_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
# the seed in every test id, so the failure line of any test names it; database=None: a failure must
# reproduce from the seed alone, not from a local example database CI does not have
pytestmark = pytest.mark.parametrize("fuzz_seed", [FUZZ_SEED], ids=lambda s: f"fuzz-seed={s}")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False,
                    database=None, print_blob=True)
VALID_PROFILE = json.loads(json.dumps(load_profile("llama-3.1-8b_a100-40gb").to_dict()))


@seed(FUZZ_SEED)
@SETTINGS
@given(case=F.mutated(F.VALID_SCENARIO))
def test_scenario_runs_or_fails_cleanly(tmp_path_factory, fuzz_seed, case):
    data, n = case
    out = F.scenario_target(data, tmp_path_factory.mktemp("s"))
    if n == 0:
        assert out == "ran"


@seed(FUZZ_SEED)
@SETTINGS
@given(case=F.mutated(VALID_PROFILE))
def test_profile_loads_or_fails_cleanly(tmp_path_factory, fuzz_seed, case):
    data, n = case
    out = F.profile_target(data, tmp_path_factory.mktemp("p"))
    if n == 0:
        assert out == "ran"


@seed(FUZZ_SEED)
@SETTINGS
@given(raw=st.binary(max_size=300))
def test_azure_loader_bytes(tmp_path_factory, fuzz_seed, raw):
    from agentwatt.traces.loaders import load_azure_2023
    F.bytes_target(load_azure_2023, raw, tmp_path_factory.mktemp("a"), ".csv")


def test_stray_carriage_return_in_csv_is_a_clean_error(tmp_path, fuzz_seed):
    # found by benchmarks/fuzz.py: the csv module raises its own error on a bare CR inside a line
    from agentwatt.traces.loaders import load_trace
    p = tmp_path / "v.csv"
    p.write_bytes(b"arrived_at,num_prefill_tokens,num_decode_tokens\n1,2\r3,4\n")
    assert F.bytes_target(lambda path: load_trace("vidur-csv", path), p.read_bytes(), tmp_path) == "rejected"


# --- valid inputs: must run (benchmarks/fuzzing/valid.py); the long profile is benchmarks/fuzz.py -------------
# (regressions it found: tests/sim/test_run_end_booking.py)

VALID_SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False,
                          database=None, print_blob=True)


@seed(FUZZ_SEED)
@settings(VALID_SETTINGS, max_examples=80)
@given(data=V.valid_scenarios())
def test_valid_scenario_runs_and_is_sane(tmp_path_factory, fuzz_seed, data):
    assert V.valid_scenario_target(data, tmp_path_factory.mktemp("vs")) == "ran"


@pytest.mark.parametrize("fmt", sorted(LOADERS))
def test_valid_trace_round_trips(fmt, tmp_path_factory, fuzz_seed):
    @seed(FUZZ_SEED)
    @VALID_SETTINGS
    @given(V.valid_traces(fmt))
    def check(case):
        assert V.trace_roundtrip_target(case, tmp_path_factory.mktemp("vt")) == "ran"
    check()


@seed(FUZZ_SEED)
@VALID_SETTINGS
@given(d=V.valid_profiles())
def test_valid_profile_loads_round_trips_and_runs(tmp_path_factory, fuzz_seed, d):
    assert V.profile_roundtrip_target(d, tmp_path_factory.mktemp("vp")) == "ran"


def test_valid_generators_cover_every_loader(fuzz_seed):
    assert set(V.TRACE_STRATEGIES) == set(LOADERS)


# --- hostile inputs (issue #18): huge numbers, deep nesting, device files, times going backwards -------------

HOSTILE_SETTINGS = settings(SETTINGS, max_examples=15)


@pytest.mark.parametrize("fmt", sorted(LOADERS))
def test_hostile_bytes_into_every_loader(fmt, tmp_path_factory, fuzz_seed):
    from agentwatt.traces.loaders import load_trace

    @seed(FUZZ_SEED)
    @HOSTILE_SETTINGS
    @given(raw=F.hostile_bytes())
    def check(raw):
        with V.time_limit(30):
            F.bytes_target(lambda p: load_trace(fmt, p), raw, tmp_path_factory.mktemp("h"), ".jsonl")
    check()


@seed(FUZZ_SEED)
@HOSTILE_SETTINGS
@given(raw=F.hostile_bytes())
def test_hostile_bytes_as_scenario_and_profile(tmp_path_factory, fuzz_seed, raw):
    from agentwatt.core.profile import load_profile
    from agentwatt.sim.scenario import load_scenario
    with V.time_limit(30):
        assert F.bytes_target(load_scenario, raw, tmp_path_factory.mktemp("hs"), ".toml") == "rejected"
        assert F.bytes_target(load_profile, raw, tmp_path_factory.mktemp("hp"), ".json") == "rejected"


@pytest.mark.parametrize("kind", F.SPECIAL_FILES)
def test_device_fifo_and_folder_paths_are_refused(kind, tmp_path, fuzz_seed):
    from agentwatt.core.profile import load_profile
    from agentwatt.sim.scenario import load_scenario
    from agentwatt.traces.loaders import load_trace
    path = F.special_path(kind, tmp_path)
    loads = [load_scenario, load_profile] + [lambda p, f=f: load_trace(f, p) for f in sorted(LOADERS)]
    for load in loads:
        with V.time_limit(10):   # a FIFO blocks forever if opened for reading
            assert F.path_target(load, path) == "rejected"


@seed(FUZZ_SEED)
@HOSTILE_SETTINGS
@given(case=F.backwards_rounds())
def test_trace_times_going_backwards_are_rejected(tmp_path_factory, fuzz_seed, case):
    from agentwatt.traces.loaders import load_trace
    raw, backwards = case
    out = F.bytes_target(lambda p: load_trace("tracelab", p), raw, tmp_path_factory.mktemp("b"), ".jsonl")
    assert out == ("rejected" if backwards else "ran")
