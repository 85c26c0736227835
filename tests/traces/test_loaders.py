"""Azure LLM inference trace loader: the bundled cut, and exact errors for malformed files."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agentwatt.core.errors import InputError
from agentwatt.traces.loaders import bundled_trace_path, load_azure_2023, parse_timestamp
from agentwatt.traces.schema import Segment, validate_session

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
ROW1 = "2023-11-16 18:15:46.6805900,374,44"
ROW2 = "2023-11-16 18:15:50.9951690,396,109"
ROW3 = "2023-11-16 18:15:51.2224670,879,55"


def write(tmp_path: Path, content: str | bytes, name: str = "trace.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return p


def error_of(path: Path, **kw) -> str:
    with pytest.raises(InputError) as e:
        list(load_azure_2023(path, **kw))
    return str(e.value)


# --- the bundled cut ----------------------------------------------------------------------------

def test_bundled_cut_loads():
    path = bundled_trace_path("azure-conv-head2000")
    sessions = list(load_azure_2023(path))
    assert len(sessions) == 2000
    assert sessions[0].arrival_s == 0.0
    arrivals = [s.arrival_s for s in sessions]
    assert all(a <= b for a, b in zip(arrivals, arrivals[1:]))
    assert arrivals[-1] == pytest.approx(424.259457, abs=1e-6)  # 18:22:50.9400470 − 18:15:46.6805900
    for s in sessions:
        validate_session(s)
        assert s.agent == "azure-conv" and len(s.nodes) == 1
    first = sessions[0].nodes[0]
    assert first.prompt == (Segment("s0:q", 374),) and first.output_tokens == 44 and first.output_key == "s0:o0"
    assert [s.id for s in sessions[:3]] == [0, 1, 2]


def test_bundled_cut_matches_its_readme():
    path = bundled_trace_path("azure-conv-head2000")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    readme = (path.parent / "README.md").read_text(encoding="utf-8")
    assert digest in readme
    assert path.read_text(encoding="utf-8").count("\n") == 2001


def test_bundled_unknown_name():
    with pytest.raises(InputError) as e:
        bundled_trace_path("azure-code")
    assert str(e.value) == ("bundled trace 'azure-code': unknown name: expected one of azure-conv-head2000, "
                            "claude-code-sample, mooncake-conv-head1000, tracelab-example")


def test_full_conv_trace_loads(shared_file):
    sessions = list(load_azure_2023(shared_file("traces/azure_llm_2023_conv.csv")))
    assert len(sessions) == 19_366
    assert sessions[-1].arrival_s == pytest.approx(3501.721937, abs=1e-6)


# --- options ------------------------------------------------------------------------------------

def test_second_arrival_keeps_sub_microsecond_precision(tmp_path):
    sessions = list(load_azure_2023(write(tmp_path, f"{HEADER}\n{ROW1}\n{ROW2}")))  # no final newline
    assert sessions[1].arrival_s == pytest.approx(4.314579, abs=1e-9)


def test_limit_label_and_first_id(tmp_path):
    p = write(tmp_path, f"{HEADER}\n{ROW1}\n{ROW2}\n{ROW3}\n")
    sessions = list(load_azure_2023(p, limit=2, agent="azure-code", first_id=100))
    assert [(s.id, s.agent) for s in sessions] == [(100, "azure-code"), (101, "azure-code")]
    assert sessions[1].nodes[0].prompt == (Segment("s101:q", 396),)


def test_max_tokens_shortens_the_prompt(tmp_path):
    p = write(tmp_path, f"{HEADER}\n{ROW1}\n{ROW2}\n2023-11-16 18:15:52.0,10,600\n")
    calls = [s.nodes[0] for s in load_azure_2023(p, max_tokens=400)]
    assert [(c.prompt_tokens, c.output_tokens) for c in calls] == [(356, 44), (291, 109), (1, 399)]


def test_zero_tokens_become_one(tmp_path):
    p = write(tmp_path, f"{HEADER}\n2023-11-16 18:15:46.6805900,0,0\n")
    (s,) = load_azure_2023(p)
    assert s.nodes[0].prompt_tokens == 1 and s.nodes[0].output_tokens == 1
    validate_session(s)


def test_crlf_bom_blank_lines_and_equal_times(tmp_path):
    body = "\ufeff" + HEADER + "\r\n" + ROW1 + "\r\n\r\n" + ROW1 + "\r\n"
    sessions = list(load_azure_2023(write(tmp_path, body)))
    assert [s.arrival_s for s in sessions] == [0.0, 0.0]


def test_reordered_columns_and_time_zones(tmp_path):
    body = ("GeneratedTokens,TIMESTAMP,ContextTokens\n"
            "5,2024-05-12 00:00:00+00:00,10\n"
            "6,2024-05-12 01:00:00.001163+01:00,20\n")
    sessions = list(load_azure_2023(write(tmp_path, body)))
    assert sessions[1].arrival_s == pytest.approx(0.001163, abs=1e-9)
    assert sessions[1].nodes[0].prompt_tokens == 20 and sessions[1].nodes[0].output_tokens == 6


def test_parse_timestamp():
    assert parse_timestamp("2023-11-16 18:15:46.6805900")[1:] == (0.68059, False)
    assert parse_timestamp("2023-11-16T18:15:46Z")[2] is True
    assert parse_timestamp("2023-02-30 00:00:00") is None
    assert parse_timestamp("16/11/2023 18:15") is None


# --- errors: "{path}: line {n}: {what was wrong}: expected {what}" ------------------------------

def test_eager_argument_errors(tmp_path):
    p = tmp_path / "absent.csv"
    with pytest.raises(InputError) as e:
        load_azure_2023(p, limit=0)
    assert str(e.value) == f"{p}: limit = 0: expected an integer >= 1 or None"
    with pytest.raises(InputError) as e:
        load_azure_2023(p, max_tokens=1)
    assert str(e.value) == f"{p}: max_tokens = 1: expected an integer >= 2 or None"


def test_missing_file(tmp_path):
    p = tmp_path / "absent.csv"
    assert error_of(p) == f"{p}: cannot read (No such file or directory): expected a readable CSV file"


def test_empty_file(tmp_path):
    p = write(tmp_path, "")
    assert error_of(p) == f"{p}: line 1: empty file: expected a header TIMESTAMP,ContextTokens,GeneratedTokens"


def test_header_only(tmp_path):
    p = write(tmp_path, HEADER + "\n")
    assert error_of(p) == f"{p}: line 2: no data rows after the header: expected at least one request"


def test_renamed_header_column(tmp_path):
    p = write(tmp_path, f"TIMESTAMP,PromptTokens,GeneratedTokens\n{ROW1}\n")
    assert error_of(p) == (f"{p}: line 1: header 'TIMESTAMP,PromptTokens,GeneratedTokens' lacks ContextTokens: "
                           f"expected the columns TIMESTAMP,ContextTokens,GeneratedTokens")


def test_missing_header(tmp_path):
    p = write(tmp_path, f"{ROW1}\n{ROW2}\n")
    assert error_of(p) == (f"{p}: line 1: header '{ROW1}' lacks TIMESTAMP, ContextTokens, GeneratedTokens: "
                           f"expected the columns TIMESTAMP,ContextTokens,GeneratedTokens")


def test_non_integer_tokens(tmp_path):
    p = write(tmp_path, f"{HEADER}\n{ROW1}\n2023-11-16 18:15:50.9951690,39.6,109\n")
    assert error_of(p) == f"{p}: line 3: ContextTokens = '39.6': expected an integer >= 0"


def test_negative_tokens(tmp_path):
    p = write(tmp_path, f"{HEADER}\n{ROW1}\n{ROW2}\n2023-11-16 18:15:51.2224670,879,-55")
    assert error_of(p) == f"{p}: line 4: GeneratedTokens = '-55': expected an integer >= 0"


def test_wrong_field_count(tmp_path):
    p = write(tmp_path, f"{HEADER}\n{ROW1}\n2023-11-16 18:15:50.9951690,396\n")
    assert error_of(p) == (f"{p}: line 3: 2 fields in '2023-11-16 18:15:50.9951690,396': "
                           f"expected 3 (TIMESTAMP,ContextTokens,GeneratedTokens)")


def test_bad_timestamp(tmp_path):
    p = write(tmp_path, f"{HEADER}\n16/11/2023 18:15,374,44\n")
    assert error_of(p) == f"{p}: line 2: TIMESTAMP = '16/11/2023 18:15': expected a time like 2023-11-16 18:15:46.6805900"


def test_unsorted_timestamps(tmp_path):
    p = write(tmp_path, f"{HEADER}\n{ROW1}\n{ROW3}\n{ROW2}\n")
    assert error_of(p) == (f"{p}: line 4: TIMESTAMP = '2023-11-16 18:15:50.9951690' is earlier than line 3 "
                           f"('2023-11-16 18:15:51.2224670'): expected timestamps in non-decreasing order")


def test_mixed_time_zones(tmp_path):
    p = write(tmp_path, f"{HEADER}\n{ROW1}\n2023-11-16 18:15:50+00:00,1,1\n")
    assert error_of(p) == (f"{p}: line 3: TIMESTAMP = '2023-11-16 18:15:50+00:00' has a time zone, unlike the "
                           f"first row: expected every timestamp with a time zone or every one without")


def test_non_utf8_bytes(tmp_path):
    p = write(tmp_path, f"{HEADER}\n{ROW1}\n".encode() + b"2023-11-16 18:15:50.9951690,3\xe9,109\n")
    assert error_of(p) == f"{p}: line 3: byte 0xe9 at column 30 is not UTF-8: expected a UTF-8 text file"


def test_rows_before_an_error_are_yielded(tmp_path):
    p = write(tmp_path, f"{HEADER}\n{ROW1}\n{ROW2}\nbad\n")
    stream = load_azure_2023(p)
    assert [s.id for s in (next(stream), next(stream))] == [0, 1]
    with pytest.raises(InputError, match="line 4: 1 fields"):
        next(stream)
