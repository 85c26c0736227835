"""TraceLab (UW SyFI Lab) coding-agent rounds: one LLM round per JSON line, with per-tool latency
(``docs/traces-sources.md`` §4, docs/traces-survey.md §3–4).

Fields used: ``session_id``, ``round_index`` (0, 1, ... within a session; a session's rounds are
consecutive lines), ``input_tokens_total`` = ``prefix_tokens`` (cached part) + new tokens,
``output_tokens`` (for Codex, reasoning tokens are taken to be inside it, as in OpenAI's usage
accounting), ``first_input_event_type``, ``timing_events[].timestamp`` and ``tools[]`` with
``tool_name`` and ``tool_wall_latency_ms`` (``null`` = no result recorded: 0 s).

Each session becomes a DAG: round k's LLM call → its tool calls in parallel (each named by its
tool, latency = wall latency) → round k+1's call after all of them. A round that starts with a user
message waits first for a ``"human"`` ToolCall: the time from the previous round's last event to
that message. Round k's prompt is the first ``prefix_tokens`` tokens of round k−1's prompt +
output, then one new segment. Sessions come from different developers and days, so every session
has ``arrival_s = 0``; give arrivals with an arrival process.
"""
from __future__ import annotations

import os
from typing import IO, Iterator, Optional

from agentwatt.core.errors import InputError
from agentwatt.traces.builder import DagBuilder
from agentwatt.traces.readers import (cap_call, check_args, empty_file, get_int, get_list, get_time, json_lines,
                                      open_binary, parse_iso_s, take_prefix)
from agentwatt.traces.schema import Segment, Session

AGENT_LABEL = "tracelab"


def load_tracelab(path: str | os.PathLike, *, limit: Optional[int] = None, max_tokens: Optional[int] = None,
                  first_id: int = 0) -> Iterator[Session]:
    """Stream TraceLab sessions from a rounds JSONL file (see the module notes)."""
    p = check_args(path, limit, max_tokens, first_id)
    return _sessions(p, limit, max_tokens, first_id)


def _sessions(path: str, limit: Optional[int], max_tokens: Optional[int], first_id: int) -> Iterator[Session]:
    with open_binary(path, "TraceLab rounds JSONL file") as f:
        count = 0
        for rounds in _grouped(path, f):
            yield _session(path, first_id + count, rounds, max_tokens)
            count += 1
            if limit is not None and count >= limit:
                return
        if count == 0:
            raise empty_file(path, "one TraceLab round per JSON line")


def _grouped(path: str, f: IO[bytes]) -> Iterator[list[tuple[int, dict]]]:
    done: set[str] = set()
    rounds: list[tuple[int, dict]] = []
    for n, obj in json_lines(path, f, "one TraceLab round"):
        sid = obj.get("session_id")
        if not isinstance(sid, str) or not sid:
            raise InputError(f"{path}: line {n}: session_id = {sid!r}: expected a session id (text)")
        if rounds and sid != rounds[0][1]["session_id"]:
            done.add(rounds[0][1]["session_id"])
            yield rounds
            rounds = []
        if sid in done:
            raise InputError(f"{path}: line {n}: session_id {sid!r} appears again after other sessions: "
                             f"expected a session's rounds on consecutive lines")
        idx = get_int(path, n, obj, "round_index")
        if idx != len(rounds):
            raise InputError(f"{path}: line {n}: round_index = {idx}: expected {len(rounds)} (rounds in order from 0)")
        rounds.append((n, obj))
    if rounds:
        yield rounds


def _events(path: str, n: int, obj: dict) -> tuple[float, float]:
    """(first, last) event time in seconds of one round."""
    times = []
    for i, e in enumerate(get_list(path, n, obj, "timing_events")):
        ts = e.get("timestamp") if isinstance(e, dict) else None
        t = parse_iso_s(ts) if isinstance(ts, str) else None
        if t is None:
            raise InputError(f"{path}: line {n}: timing_events[{i}].timestamp = {ts!r}: "
                             f"expected an ISO-8601 time like 2026-06-01T05:40:20.151Z")
        times.append(t)
    if not times:
        raise InputError(f"{path}: line {n}: timing_events is empty: expected at least the round's first event")
    return min(times), max(times)


def _session(path: str, sid: int, rounds: list[tuple[int, dict]], max_tokens: Optional[int]) -> Session:
    b = DagBuilder(sid)
    context: tuple[Segment, ...] = ()
    deps: tuple[int, ...] = ()
    prev_end: Optional[float] = None
    prev_start: Optional[float] = None
    for k, (n, r) in enumerate(rounds):
        total = get_int(path, n, r, "input_tokens_total", low=1)
        cached = min(get_int(path, n, r, "prefix_tokens"), total)
        out = max(1, get_int(path, n, r, "output_tokens"))
        first, last = _events(path, n, r)
        if prev_start is not None and first < prev_start:
            raise InputError(f"{path}: line {n}: round {k} starts {prev_start - first:.3g} s before round {k - 1} "
                             f"of its session: expected rounds in time order")
        prev_start = first
        if prev_end is not None and r.get("first_input_event_type") == "user_message":
            deps = (b.tool("human", max(0.0, first - prev_end), deps).id,)
        head = take_prefix(context, cached)
        new = total - sum(s.tokens for s in head)
        prompt = head + ((b.segment(f"r{k}", new),) if new > 0 else ())
        capped, out = cap_call(prompt, out, max_tokens)
        call = b.llm(capped, out, deps)
        context = prompt + (call.output_segment,)
        tools = []
        end = last
        for j, t in enumerate(get_list(path, n, r, "tools")):
            w = f"tools[{j}]."
            if not isinstance(t, dict):
                raise InputError(f"{path}: line {n}: tools[{j}] = {t!r}: expected a tool object")
            name = t.get("tool_name")
            if not isinstance(name, str) or not name:
                raise InputError(f"{path}: line {n}: {w}tool_name = {name!r}: expected a tool name")
            ms = get_time(path, n, t, "tool_wall_latency_ms", w, optional=True) or 0.0
            tools.append(b.tool(name, ms / 1000.0, (call.id,)).id)
            done = t.get("result_at")
            if isinstance(done, str) and parse_iso_s(done) is not None:
                end = max(end, parse_iso_s(done))
        deps = tuple(tools) if tools else (call.id,)
        prev_end = end
    return b.session(AGENT_LABEL, 0.0)
