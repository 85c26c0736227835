"""Trace files a careless or hostile user may give: each is a one-line InputError, never a
traceback, a hang or a memory blow-up (issue #18)."""
import json
import os

import pytest

from agentwatt.core.errors import InputError
from agentwatt.traces.loaders import LOADERS, load_azure_2023, load_trace
from tests.traces.test_loaders_agentic import C0, C1, CSV_HEAD, R0, R1, SUB, raw_session, tl_round

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
ROW = "2023-11-16 18:15:46.6805900,374,44"


def error_of(fmt: str, path) -> str:
    with pytest.raises(InputError) as e:
        list(load_trace(fmt, path))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path))
    return msg


def test_5001_digit_integer_in_azure_and_mooncake(tmp_path):
    big = "9" * 5001   # int() refuses more than 4,300 digits with a ValueError
    p = tmp_path / "a.csv"
    p.write_text(f"{HEADER}\n{ROW}\n2023-11-16 18:15:47.0,{big},5\n")
    msg = error_of("azure-2023", p)
    assert "line 3: ContextTokens" in msg and "at most 18 digits" in msg and len(msg) < 300
    m = tmp_path / "m.jsonl"
    m.write_text('{"timestamp": 0, "input_length": %s, "output_length": 5, "hash_ids": [0]}\n' % big)
    assert "line 1: not usable JSON" in error_of("mooncake", m)


def test_deeply_nested_json_line(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text("[" * 100_000 + "\n")   # json.loads: RecursionError
    assert "line 1: not usable JSON" in error_of("mooncake", m)


def test_azure_error_does_not_echo_a_huge_line(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(f"{HEADER}\n{ROW}\n" + "x" * 1_000_000 + "\n")
    msg = error_of("azure-2023", p)
    assert len(msg) < 300 and "1,000,000 characters" in msg
    p.write_text("y" * 1_000_000 + "\n")   # a header that is one huge line
    assert len(error_of("azure-2023", p)) < 400


@pytest.mark.parametrize("fmt", sorted(LOADERS))
def test_device_and_fifo_are_not_traces(tmp_path, fmt):
    msg = error_of(fmt, "/dev/zero")   # never ends a line: reading it would fill the memory
    assert "not a regular file" in msg
    fifo = tmp_path / "t.fifo"
    os.mkfifo(fifo)                    # opening it for reading would block until a writer comes
    assert "not a regular file" in error_of(fmt, fifo)


def test_azure_direct_loader_checks_the_file_kind(tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        list(load_azure_2023(tmp_path))


def test_tracelab_times_going_backwards(tmp_path):
    p = tmp_path / "tl.jsonl"
    late = tl_round(0, timing_events=[{"timestamp": "2026-01-01T00:00:05.000Z"}])
    p.write_text(f"{late}\n{tl_round(1)}\n")   # round 1 at 00:00:01, before round 0 at 00:00:05
    assert "line 2: round 1 starts 4 s before round 0 of its session" in error_of("tracelab", p)
    p.write_text(f"{tl_round(0)}\n{tl_round(1)}\n")   # in order: loads
    assert len(list(load_trace("tracelab", p))) == 1


def test_claude_code_times_going_backwards(tmp_path):
    p = tmp_path / "cc.jsonl"
    p.write_text(raw_session([R1, R0]) + "\n")   # t = 9 then t = 0
    assert "line 1: requests[1].t = 0 is earlier than the agent's previous call (t = 9)" in error_of("claude-code", p)
    p.write_text(raw_session([R0, R1, SUB]) + "\n")   # a subagent spawned at 5 after the call at 9
    assert "requests[2].t = 5 is earlier" in error_of("claude-code", p)
    p.write_text(raw_session([R0, SUB, R1]) + "\n")
    assert len(list(load_trace("claude-code", p))) == 1
    c = tmp_path / "cc.csv"
    c.write_text("\n".join([CSV_HEAD, C1.replace(",1,10.0,", ",0,10.0,"), C0.replace(",0,0.0,", ",1,0.0,")]) + "\n")
    assert "line 3: t_s = 0 is earlier than the agent's previous call (t = 10)" in error_of("claude-code", c)


def test_huge_prompt_in_a_trace_is_dropped_without_hashing(tmp_path):
    """A 10^12-token prompt can never fit the KV cache: the call is dropped at admission. Hashing its
    6·10^10 blocks first would take hours and all memory; the run must end at once instead."""
    from agentwatt.sim.run import run
    from agentwatt.sim.scenario import load_scenario
    from benchmarks.fuzzing.valid import time_limit
    p = tmp_path / "a.csv"
    p.write_text(f"{HEADER}\n{ROW}\n2023-11-16 18:15:47.0,{10**12},5\n2023-11-16 18:15:48.0,300,5\n")
    s = tmp_path / "s.toml"
    s.write_text(f'[run]\nduration_s = 10\n[[workload]]\ntrace = "{p.name}"\nformat = "azure-2023"\n')
    with time_limit(120):   # a hang guard only: the fixed run takes about a second
        res = run(load_scenario(s))
    assert res.summary["calls_dropped"] == 1 and res.summary["calls_completed"] == 2
    assert res.calls.loc[res.calls["status"] == "dropped", "prompt_tokens"].tolist() == [10**12]


def test_react_iteration_budget_is_bounded(tmp_path):
    """A 10**13 iteration budget with every task looping built sessions until the process was killed
    (found by the fresh-seed CI fuzz profile): now a one-line error naming the knob."""
    from agentwatt.core.errors import InputError
    from agentwatt.sim.scenario import scenario_from_dict
    d = {"name": "big", "profile": "llama-3.1-8b_a100-40gb", "run": {"duration_s": 20},
         "workload": [{"agent": "react-hotpotqa", "rate_per_s": 1,
                       "knobs": {"iteration_budget": 10**13, "stuck_fraction": 1.0}}]}
    with pytest.raises(InputError, match="iteration_budget"):
        scenario_from_dict(d, where="big.toml")
