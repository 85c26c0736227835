"""Short fuzz profile for CI: every parser and the scenario builder either runs an input or
rejects it with a one-line AgentwattError, and valid generated inputs (scenarios, traces of every
loader, profiles) run, round-trip and give sane results. The long profile is benchmarks/fuzz.py."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentwatt.core.profile import load_profile
from agentwatt.traces.loaders import LOADERS
from benchmarks.fuzzing import targets as F  # benchmarks/fuzzing/ (repository root on sys.path: conftest.py)
from benchmarks.fuzzing import valid as V

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
VALID_PROFILE = json.loads(json.dumps(load_profile("llama-3.1-8b_a100-40gb").to_dict()))


@SETTINGS
@given(F.mutated(F.VALID_SCENARIO))
def test_scenario_runs_or_fails_cleanly(tmp_path_factory, case):
    data, n = case
    out = F.scenario_target(data, tmp_path_factory.mktemp("s"))
    if n == 0:
        assert out == "ran"


@SETTINGS
@given(F.mutated(VALID_PROFILE))
def test_profile_loads_or_fails_cleanly(tmp_path_factory, case):
    data, n = case
    out = F.profile_target(data, tmp_path_factory.mktemp("p"))
    if n == 0:
        assert out == "ran"


@SETTINGS
@given(st.binary(max_size=300))
def test_azure_loader_bytes(tmp_path_factory, raw):
    from agentwatt.traces.loaders import load_azure_2023
    F.bytes_target(load_azure_2023, raw, tmp_path_factory.mktemp("a"), ".csv")


def test_stray_carriage_return_in_csv_is_a_clean_error(tmp_path):
    # found by benchmarks/fuzz.py: the csv module raises its own error on a bare CR inside a line
    from agentwatt.traces.loaders import load_trace
    p = tmp_path / "v.csv"
    p.write_bytes(b"arrived_at,num_prefill_tokens,num_decode_tokens\n1,2\r3,4\n")
    assert F.bytes_target(lambda path: load_trace("vidur-csv", path), p.read_bytes(), tmp_path) == "rejected"


# --- valid inputs: must run (benchmarks/fuzzing/valid.py); the long profile is benchmarks/fuzz.py -------------
# (regressions it found: tests/sim/test_run_end_booking.py)

VALID_SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@settings(VALID_SETTINGS, max_examples=80)
@given(V.valid_scenarios())
def test_valid_scenario_runs_and_is_sane(tmp_path_factory, data):
    assert V.valid_scenario_target(data, tmp_path_factory.mktemp("vs")) == "ran"


@pytest.mark.parametrize("fmt", sorted(LOADERS))
def test_valid_trace_round_trips(fmt, tmp_path_factory):
    @VALID_SETTINGS
    @given(V.valid_traces(fmt))
    def check(case):
        assert V.trace_roundtrip_target(case, tmp_path_factory.mktemp("vt")) == "ran"
    check()


@VALID_SETTINGS
@given(V.valid_profiles())
def test_valid_profile_loads_round_trips_and_runs(tmp_path_factory, d):
    assert V.profile_roundtrip_target(d, tmp_path_factory.mktemp("vp")) == "ran"


def test_valid_generators_cover_every_loader():
    assert set(V.TRACE_STRATEGIES) == set(LOADERS)
