"""Loaders for Mooncake, Claude Code (WEKA), TraceLab and Vidur traces; the registry; the bundled cuts.

Every loader reports the first bad line as ``"{path}: line {n}: {what}: expected {what}"``, and
handles an empty file and a file that is not UTF-8.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from agentwatt.core.errors import InputError
from agentwatt.traces.load_claude_code import load_claude_code
from agentwatt.traces.load_mooncake import load_mooncake
from agentwatt.traces.load_tracelab import load_tracelab
from agentwatt.traces.load_vidur import load_vidur_csv
from agentwatt.traces.loaders import BUNDLED_FORMATS, BUNDLED_TRACES, LOADERS, bundled_trace_path, load_trace
from agentwatt.traces.schema import Segment, validate_session
from agentwatt.traces.stats import workload_stats


def write(tmp_path: Path, content: str | bytes, name: str) -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return p


def error_of(loader, path: Path, **kw) -> str:
    with pytest.raises(InputError) as e:
        list(loader(path, **kw))
    return str(e.value)


def mooncake_hit_ratio(lines: list[str]) -> tuple[float, float]:
    """Independent of the loader: (block hit ratio, token hit ratio) of the trace's own hash_ids with an
    unbounded cache. hash_ids are prefix-chained, so a seen id means its whole prefix was seen."""
    seen: set[int] = set()
    blocks = hit_blocks = tokens = hit_tokens = 0
    for line in lines:
        d = json.loads(line)
        ids, n_in = d["hash_ids"], d["input_length"]
        k = 0
        while k < len(ids) and ids[k] in seen:
            k += 1
        blocks += len(ids)
        hit_blocks += k
        tokens += n_in
        hit_tokens += n_in if k == len(ids) else 512 * k
        seen.update(ids)
    return hit_blocks / blocks, hit_tokens / tokens


# --- registry and bundled cuts -------------------------------------------------------------------

def test_registry_and_bundled_formats():
    assert set(LOADERS) == {"azure-2023", "mooncake", "claude-code", "tracelab", "vidur-csv"}
    assert set(BUNDLED_FORMATS) == set(BUNDLED_TRACES)
    assert all(f in LOADERS for f in BUNDLED_FORMATS.values())


@pytest.mark.parametrize("name", sorted(BUNDLED_TRACES))
def test_bundled_cut_is_small_documented_and_loads(name):
    path = bundled_trace_path(name)
    data = path.read_bytes()
    assert len(data) < 300_000
    readme = (path.parent / "README.md").read_text(encoding="utf-8")
    assert hashlib.sha256(data).hexdigest() in readme and path.name in readme
    sessions = list(load_trace(BUNDLED_FORMATS[name], name))
    assert sessions and all(validate_session(s) is s for s in sessions)
    assert [s.id for s in sessions] == list(range(len(sessions)))


def test_load_trace_errors(tmp_path):
    with pytest.raises(InputError) as e:
        load_trace("sharegpt", tmp_path / "x")
    assert str(e.value) == ("trace format 'sharegpt': unknown format: expected one of azure-2023, claude-code, "
                            "mooncake, tracelab, vidur-csv")
    with pytest.raises(InputError) as e:
        load_trace("mooncake", tmp_path / "x.jsonl", limit=0)
    assert str(e.value) == f"{tmp_path / 'x.jsonl'}: limit = 0: expected an integer >= 1 or None"


@pytest.mark.parametrize("fmt", ["mooncake", "claude-code", "tracelab", "vidur-csv"])
def test_every_loader_missing_empty_and_not_utf8(tmp_path, fmt):
    loader = LOADERS[fmt]
    missing = tmp_path / "absent"
    assert error_of(loader, missing).startswith(f"{missing}: cannot read (No such file or directory): expected a readable")
    empty = write(tmp_path, "", "empty")
    assert error_of(loader, empty).startswith(f"{empty}: line 1: empty file: expected ")
    blank = write(tmp_path, "\n\n", "blank")
    assert "empty file" in error_of(loader, blank) or "no data rows" in error_of(loader, blank)
    latin = write(tmp_path, b"\xe9t\xe9\n", "latin1")
    assert error_of(loader, latin) == f"{latin}: line 1: byte 0xe9 at column 1 is not UTF-8: expected a UTF-8 text file"


# --- Mooncake ----------------------------------------------------------------------------------

ML1 = '{"timestamp": 0, "input_length": 1100, "output_length": 50, "hash_ids": [0, 1, 2]}'
ML2 = '{"timestamp": 3000, "input_length": 600, "output_length": 0, "hash_ids": [0, 7]}'


def test_mooncake_segments_share_keys_across_requests(tmp_path):
    a, b = load_mooncake(write(tmp_path, f"{ML1}\n{ML2}\n", "m.jsonl"))
    assert a.nodes[0].prompt == (Segment("mooncake:0", 512), Segment("mooncake:1", 512), Segment("mooncake:2", 76))
    assert b.nodes[0].prompt == (Segment("mooncake:0", 512), Segment("mooncake:7", 88))
    assert b.nodes[0].output_tokens == 1 and b.arrival_s == 3.0 and b.nodes[0].output_key == "s1:o0"
    st = workload_stats([a, b], prefix_reuse=True)
    assert st["prefix_reuse"] == pytest.approx(512 / 1700)  # b's first block was a's first block


def test_mooncake_bundled_cut_reuse_matches_its_hash_ids():
    path = bundled_trace_path("mooncake-conv-head1000")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000
    blocks, tokens = mooncake_hit_ratio(lines)
    sessions = list(load_trace("mooncake", "mooncake-conv-head1000"))
    assert sessions[-1].arrival_s == pytest.approx(json.loads(lines[-1])["timestamp"] / 1000)
    st = workload_stats(sessions)
    assert blocks == pytest.approx(0.2121, abs=1e-4)  # the cold start of the first 1,000 requests
    assert st["prefix_reuse"] == pytest.approx(tokens, abs=0.005)  # 16-token blocks vs 512-token ids


def test_mooncake_full_trace_hit_ratio_is_37_percent(shared_file):
    """docs/traces-survey.md §2.2: unbounded-cache prefix-block hit ratio of the conversation trace ≈ 0.37."""
    path = shared_file("traces/mooncake_fast25_conversation.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, _ = mooncake_hit_ratio(lines)
    assert blocks == pytest.approx(0.37, abs=0.005)
    n = sum(1 for _ in load_mooncake(path))
    assert n == 12_031


def test_mooncake_options(tmp_path):
    p = write(tmp_path, f"{ML1}\n{ML2}\n", "m.jsonl")
    (s,) = load_mooncake(p, limit=1, first_id=5, max_tokens=600)
    assert s.id == 5 and s.nodes[0].prompt_tokens == 550 and s.nodes[0].output_tokens == 50
    assert s.nodes[0].prompt == (Segment("mooncake:0", 512), Segment("mooncake:1", 38))


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2: not JSON (Expecting property name enclosed in double quotes at column 2): expected one JSON "
                  'object per line ({"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [...]})'),
    ("[1, 2]", 'line 2: a JSON list: expected one JSON object per line ({"timestamp": ms, "input_length": n, '
               '"output_length": n, "hash_ids": [...]})'),
    ('{"timestamp": 5, "output_length": 1, "hash_ids": [0]}', "line 2: input_length missing: expected an integer >= 1"),
    ('{"timestamp": 5, "input_length": 10.5, "output_length": 1, "hash_ids": [0]}',
     "line 2: input_length = 10.5: expected an integer >= 1"),
    ('{"timestamp": -1, "input_length": 10, "output_length": 1, "hash_ids": [0]}',
     "line 2: timestamp = -1: expected a number >= 0"),
    ('{"timestamp": 5, "input_length": 1100, "output_length": 1, "hash_ids": [0]}',
     "line 2: hash_ids has 1 ids for input_length 1100: expected ceil(1100 / 512) = 3"),
    ('{"timestamp": 5, "input_length": 10, "output_length": 1, "hash_ids": ["a"]}',
     "line 2: hash_ids[0] = 'a': expected an integer id >= 0"),
    ('{"timestamp": 5, "input_length": 10, "output_length": 1, "hash_ids": 3}',
     "line 2: hash_ids = 3: expected a list"),
])
def test_mooncake_first_bad_line(tmp_path, line, message):
    p = write(tmp_path, f"{ML2}\n{line}\n{ML1}\n", "m.jsonl")
    assert error_of(load_mooncake, p) == f"{p}: {message}"


def test_mooncake_unsorted(tmp_path):
    p = write(tmp_path, f"{ML2}\n{ML1}\n", "m.jsonl")
    assert error_of(load_mooncake, p) == (f"{p}: line 2: timestamp = 0 is earlier than line 1 (3000): "
                                          f"expected timestamps in non-decreasing order")


# --- Claude Code (WEKA) ------------------------------------------------------------------------

def raw_session(requests: list, **top) -> str:
    return json.dumps({"id": "trace_x", "block_size": 64, "hash_id_scope": "local", "requests": requests, **top})


R0 = {"t": 0.0, "type": "n", "in": 150, "out": 20, "hash_ids": [1, 2], "input_types": ["text"], "api_time": 2.0,
      "think_time": 0.0}
R1 = {"t": 9.0, "type": "n", "in": 200, "out": 30, "hash_ids": [1, 2, 3], "input_types": ["tool_result"],
      "api_time": 1.0, "think_time": 7.0}
SUB = {"t": 5.0, "type": "subagent", "agent_id": "agent_001",
       "requests": [{"t": 0.0, "type": "n", "in": 70, "out": 5, "hash_ids": [9], "input_types": ["text"],
                     "api_time": 1.0, "think_time": 0.0},
                    {"t": 4.0, "type": "n", "in": 90, "out": 5, "hash_ids": [9], "input_types": ["tool_result"],
                     "api_time": 1.0}]}


def test_claude_code_raw_dag(tmp_path):
    p = write(tmp_path, raw_session([R0, SUB, R1]) + "\n", "cc.jsonl")
    (s,) = load_claude_code(p)
    validate_session(s)
    kinds = [(type(n).__name__, getattr(n, "tool", None), n.deps) for n in s.nodes]
    assert kinds == [
        ("LLMCall", None, ()),                # root call 0
        ("ToolCall", "client", (0,)),         # think_time 7 s before root call 1 (a tool result)
        ("LLMCall", None, (1,)),              # root call 1
        ("ToolCall", "client", (0,)),         # spawn gap: 5 − (0 + 2) = 3 s after the parent call
        ("LLMCall", None, (3,)),              # subagent call 0, in parallel with the root's next steps
        ("ToolCall", "client", (4,)),         # missing think_time: 4 − (0 + 1) = 3 s
        ("LLMCall", None, (5,)),
    ]
    assert [n.latency_s for n in s.tool_calls] == [7.0, 3.0, 3.0]
    assert s.nodes[0].prompt == (Segment("s0:h1", 64), Segment("s0:h2", 64), Segment("s0:root.r0", 22))
    assert s.nodes[2].prompt[:2] == s.nodes[0].prompt[:2]  # the shared hash prefix
    assert s.arrival_s == 0.0


def test_claude_code_global_scope_is_shared_across_sessions(tmp_path):
    line = raw_session([R0], hash_id_scope="global")
    a, b = load_claude_code(write(tmp_path, f"{line}\n{line}\n", "cc.jsonl"))
    assert a.nodes[0].prompt[0] == b.nodes[0].prompt[0] == Segment("claude-code:h1", 64)


def test_claude_code_bundled_sample_has_parallel_subagents():
    sessions = list(load_trace("claude-code", "claude-code-sample"))
    lines = bundled_trace_path("claude-code-sample").read_text(encoding="utf-8").splitlines()
    for s, line in zip(sessions, lines):
        d = json.loads(line)
        calls = sum(len(r["requests"]) if r["type"] == "subagent" else 1 for r in d["requests"])
        assert len(s.llm_calls) == calls
        assert sum(c.output_tokens for c in s.llm_calls) == d["totals"]["combined_tokens"]["output"]
    big = sessions[3]  # trace_0291: two subagents spawned after the same root call
    fan = [deps for deps in {n.deps for n in big.nodes} if sum(1 for n in big.nodes if n.deps == deps) == 3]
    assert len(fan) == 1
    st = workload_stats(sessions)
    assert st["prefix_reuse"] > 0.85  # upstream README: ~93 % mean per-conversation cache hit


def test_claude_code_flattened_csv_counts(shared_file):
    sessions = list(load_claude_code(shared_file("traces/weka_claude_code_requests.csv")))
    assert len(sessions) == 243
    assert sum(len(s.llm_calls) for s in sessions) == 11_361


CSV_HEAD = ("trace_id,agent,spawn_t_s,req_idx,t_s,type,model,in_tokens,out_tokens,api_time_s,think_time_s,ttft_s,"
            "stop,input_types,output_types,n_blocks,prefix_blocks_shared_with_prev")
C0 = "t1,root,,0,0.0,n,m,1000,10,2.0,0.0,,tool_use,text,text,15,0"
C1 = "t1,root,,1,10.0,n,m,1200,10,2.0,8.0,,tool_use,tool_result,text,18,15"
C2 = "t1,agent_001,4.5,0,0.0,n,m,300,10,1.0,0.0,,tool_use,text,text,4,0"
C3 = "t2,root,,0,0.0,n,m,500,10,,,,end_turn,text,text,7,0"


def test_claude_code_csv_dag(tmp_path):
    p = write(tmp_path, "\n".join([CSV_HEAD, C0, C2, C1, C3]) + "\n", "cc.csv")
    a, b = load_claude_code(p)
    assert [(type(n).__name__, n.deps) for n in a.nodes] == [
        ("LLMCall", ()), ("ToolCall", (0,)), ("LLMCall", (1,)), ("ToolCall", (0,)), ("LLMCall", (3,))]
    assert a.nodes[3].latency_s == pytest.approx(2.5)  # spawn 4.5 − (0 + 2.0 api)
    first, second = a.nodes[0], a.nodes[2]
    assert second.prompt[0] == Segment("s0:root.p0", 960)  # 15 shared blocks × 64 of the previous prompt
    assert second.prompt[1] == Segment("s0:root.p1", 240)
    assert first.prompt == (Segment("s0:root.p0", 1000),)
    assert b.id == 1 and len(b.nodes) == 1


@pytest.mark.parametrize("rows, message", [
    ([C0, "t1,root,,2,10.0,n,m,1200,10,2.0,8.0,,tool_use,tool_result,text,18,15"],
     "line 3: req_idx = 2 for agent 'root': expected 1 (each agent's calls in order from 0)"),
    ([C0, C3, "t1,root,,1,10.0,n,m,1200,10,2.0,8.0,,tool_use,tool_result,text,18,15"],
     "line 4: trace_id = 't1' appears again after other traces: expected the rows of one trace together"),
    ([C0, "t1,root,,1,10.0,n,m,-5,10,2.0,8.0,,tool_use,tool_result,text,18,15"],
     "line 3: in_tokens = '-5': expected an integer >= 1"),
    ([C0, "t1,root,,1,ten,n,m,1200,10,2.0,8.0,,tool_use,tool_result,text,18,15"],
     "line 3: t_s = 'ten': expected a number >= 0"),
    ([C0, "t1,root,,1,10.0,n,m"], "line 3: 7 fields: expected 17 (as the header)"),
    (["t3,agent_001,4.5,0,0.0,n,m,300,10,1.0,0.0,,tool_use,text,text,4,0"],
     "line 2: trace_id 't3' has no agent = root rows: expected the main agent's calls"),
])
def test_claude_code_csv_first_bad_line(tmp_path, rows, message):
    p = write(tmp_path, "\n".join([CSV_HEAD, *rows]) + "\n", "cc.csv")
    assert error_of(load_claude_code, p) == f"{p}: {message}"


def test_claude_code_csv_header(tmp_path):
    p = write(tmp_path, "trace_id,agent,t_s\nt1,root,0\n", "cc.csv")
    assert error_of(load_claude_code, p) == (
        f"{p}: line 1: header lacks spawn_t_s, req_idx, in_tokens, out_tokens, api_time_s, think_time_s, "
        f"input_types, prefix_blocks_shared_with_prev: expected the columns trace_id,agent,spawn_t_s,req_idx,t_s,"
        f"in_tokens,out_tokens,api_time_s,think_time_s,input_types,prefix_blocks_shared_with_prev")


@pytest.mark.parametrize("requests, message", [
    ([R0, {**R1, "in": "x"}], "line 2: requests[1].in = 'x': expected an integer >= 1"),
    ([R0, {**R1, "hash_ids": [1, 2, 3, 4, 5]}],
     "line 2: requests[1].hash_ids has 5 blocks of 64 for in = 200: expected at most ceil(200 / 64)"),
    ([SUB, R0], "line 2: requests[0] is a subagent before any call: expected a parent call before it"),
    ([R0, {**SUB, "requests": [{**SUB["requests"][0], "out": -1}]}],
     "line 2: requests[1].requests[0].out = -1: expected an integer >= 0"),
    ([], "line 2: requests has no LLM call: expected at least one request"),
])
def test_claude_code_raw_first_bad_line(tmp_path, requests, message):
    p = write(tmp_path, raw_session([R0]) + "\n" + raw_session(requests) + "\n", "cc.jsonl")
    stream = load_claude_code(p)
    next(stream)  # line 1 is fine and is yielded before the error
    with pytest.raises(InputError) as e:
        next(stream)
    assert str(e.value) == f"{p}: {message}"


# --- TraceLab ----------------------------------------------------------------------------------

def test_tracelab_bundled_example():
    claude, codex = load_trace("tracelab", "tracelab-example")
    assert (len(claude.llm_calls), len(codex.llm_calls)) == (10, 9)
    rounds = [json.loads(x) for x in bundled_trace_path("tracelab-example").read_text(encoding="utf-8").splitlines()]
    tools = [t for r in rounds for t in r["tools"]]
    named = [t for s in (claude, codex) for t in s.tool_calls if t.tool != "human"]
    assert [(t.tool, t.latency_s) for t in named] == [(t["tool_name"], t["tool_wall_latency_ms"] / 1000) for t in tools]
    humans = [t for s in (claude, codex) for t in s.tool_calls if t.tool == "human"]
    assert len(humans) == sum(1 for r in rounds if r["round_index"] > 0 and r["first_input_event_type"] == "user_message")
    assert humans[0].latency_s == pytest.approx(19.913)  # 05:42:43.333 − 05:42:23.420
    first = claude.llm_calls[0]
    assert first.prompt_tokens == 32272 and first.output_tokens == 931
    # round 0's three exec_command calls run in parallel after the call; round 1 waits for all three
    assert [t.deps for t in codex.tool_calls[:3]] == [(0,), (0,), (0,)]
    assert codex.llm_calls[1].deps == (1, 2, 3)
    assert codex.llm_calls[1].prompt[0].key == "s1:r0"  # 9,600 cached tokens taken from round 0's context


def tl_round(i: int, **over) -> str:
    r = {"session_id": "a", "round_index": i, "input_tokens_total": 100 + i, "prefix_tokens": 90,
         "output_tokens": 5, "first_input_event_type": "tool_result",
         "timing_events": [{"timestamp": f"2026-01-01T00:00:0{i}.000Z"}],
         "tools": [{"tool_name": "Bash", "tool_wall_latency_ms": 100}]}
    r.update(over)
    return json.dumps(r)


@pytest.mark.parametrize("bad, message", [
    (tl_round(1, round_index=3), "line 2: round_index = 3: expected 1 (rounds in order from 0)"),
    (tl_round(1, session_id=""), "line 2: session_id = '': expected a session id (text)"),
    (tl_round(1, output_tokens=None), "line 2: output_tokens = None: expected an integer >= 0"),
    (tl_round(1, timing_events=[{"timestamp": "yesterday"}]),
     "line 2: timing_events[0].timestamp = 'yesterday': expected an ISO-8601 time like 2026-06-01T05:40:20.151Z"),
    (tl_round(1, tools=[{"tool_name": "Bash", "tool_wall_latency_ms": -3}]),
     "line 2: tools[0].tool_wall_latency_ms = -3: expected a number >= 0"),
])
def test_tracelab_first_bad_line(tmp_path, bad, message):
    p = write(tmp_path, f"{tl_round(0)}\n{bad}\n", "tl.jsonl")
    assert error_of(load_tracelab, p) == f"{p}: {message}"


def test_tracelab_session_reappears(tmp_path):
    p = write(tmp_path, "\n".join([tl_round(0), tl_round(0, session_id="b"), tl_round(1)]) + "\n", "tl.jsonl")
    assert error_of(load_tracelab, p) == (f"{p}: line 3: session_id 'a' appears again after other sessions: "
                                          f"expected a session's rounds on consecutive lines")


# --- Vidur CSV ---------------------------------------------------------------------------------

def test_vidur_main_and_pypi_headers(tmp_path):
    main = write(tmp_path, "arrived_at,num_prefill_tokens,num_decode_tokens\n0.5,100,20\n1.5,50,0\n", "v.csv")
    a, b = load_vidur_csv(main)
    assert (a.arrival_s, b.arrival_s) == (0.0, 1.0)
    assert a.nodes[0].prompt == (Segment("s0:q", 100),) and b.nodes[0].output_tokens == 1
    pypi = write(tmp_path, "Date,Time,PromptTokenCount,CompletionTokenCount\n2023-08-21,10,7,3\n2023-08-21,12.5,8,4\n",
                 "p.csv")
    c, d = load_trace("vidur-csv", pypi, max_tokens=5)
    assert d.arrival_s == 2.5 and (c.nodes[0].prompt_tokens, c.nodes[0].output_tokens) == (2, 3)


@pytest.mark.parametrize("body, message", [
    ("arrived_at,prompt\n1,2\n", "line 1: header 'arrived_at,prompt' lacks the request columns: expected the columns "
                                 "arrived_at,num_prefill_tokens,num_decode_tokens (Vidur main) or "
                                 "Date,Time,PromptTokenCount,CompletionTokenCount (Vidur 0.0.26)"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n1,2,3\n0.5,2,3\n",
     "line 3: arrived_at = '0.5' is earlier than line 2 (1): expected times in non-decreasing order"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n1,2.5,3\n", "line 2: num_prefill_tokens = '2.5': expected an integer >= 0"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n1,2\n", "line 2: 2 fields in '1,2': expected 3 (as the header)"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\nsoon,2,3\n", "line 2: arrived_at = 'soon': expected a time in seconds >= 0"),
    ("Date,Time,PromptTokenCount,CompletionTokenCount\n2023-08-21,1,2,3\n2023-08-22,2,2,3\n",
     "line 3: Date = '2023-08-22' differs from the first row's '2023-08-21': expected one date "
     "(Vidur replays one --trace_request_generator_config_date)"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n", "line 2: no data rows after the header: expected at least one request"),
])
def test_vidur_first_bad_line(tmp_path, body, message):
    p = write(tmp_path, body, "v.csv")
    assert error_of(load_vidur_csv, p) == f"{p}: {message}"
