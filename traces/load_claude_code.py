"""WEKA / kv-cache-tester Claude Code session traces (``docs/traces-sources.md`` §3, docs/traces-survey.md §3).

Two layouts of the same corpus, told apart by the first non-blank character (``{`` = JSON lines):

* **raw JSON lines**, one session per line as published (``id``, ``block_size`` (64),
  ``hash_id_scope``, ``requests``). A request has ``t`` (s from the session start), ``in``, ``out``,
  ``hash_ids`` (ids of the prompt's 64-token blocks, ``floor(in / 64)`` of them), ``input_types``,
  ``api_time`` and ``think_time``; an entry with ``type: "subagent"`` holds a subagent's own
  ``requests`` (times relative to its spawn ``t``). The prompt becomes one segment per hash id
  (``s{id}:h{hash}`` for ``hash_id_scope: local``, ``claude-code:h{hash}`` for ``global``) plus a
  remainder segment, so the simulator sees the recorded prefix sharing exactly.
* **flattened CSV** (``weka_claude_code_requests.csv``): one row per call with ``trace_id``,
  ``agent`` (``root`` or a subagent id), ``spawn_t_s``, ``req_idx``, ``t_s``, ``in_tokens``,
  ``out_tokens``, ``api_time_s``, ``think_time_s``, ``input_types`` and
  ``prefix_blocks_shared_with_prev``; rows of one trace together, each agent's ``req_idx`` 0, 1, ....
  Without hash ids, a call's prompt is the first ``64 × prefix_blocks_shared_with_prev`` tokens of
  the previous call's prompt (same agent) followed by one new segment.

Sessions: each agent is a chain of LLM calls. The client-side gap before a call (``think_time``:
tool execution + harness, or a human typing) is a ToolCall named ``"client"`` when the call's input
is a tool result and ``"human"`` when it is text only; a missing ``think_time`` is taken as the
arrival gap minus the previous call's ``api_time``. A subagent is a parallel branch that starts
after the last parent call issued before its spawn time, following a ``"client"`` gap from that
call's end to the spawn. Service times (``api_time``) are left to the simulator. The corpus has no
absolute clock, so every session has ``arrival_s = 0``: give arrivals with an arrival process.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import IO, Iterator, Optional, Sequence

from agentwatt.core.errors import InputError
from agentwatt.traces.builder import DagBuilder
from agentwatt.traces.readers import (cap_call, check_args, empty_file, get_int, get_list, get_time, json_lines,
                                      open_binary, take_prefix, text_lines)
from agentwatt.traces.schema import Segment, Session

WEKA_BLOCK_TOKENS = 64  # [Q] docs/traces-sources.md §3: hash_ids and n_blocks count 64-token blocks
AGENT_LABEL = "claude-code"
CSV_COLUMNS = ("trace_id", "agent", "spawn_t_s", "req_idx", "t_s", "in_tokens", "out_tokens", "api_time_s",
               "think_time_s", "input_types", "prefix_blocks_shared_with_prev")


@dataclass
class _Call:
    t: float
    api: Optional[float]
    think: Optional[float]
    tool_result: bool
    prompt: tuple[Segment, ...]
    out: int


@dataclass
class _Agent:
    """One chain of calls (the root agent or a subagent) and the subagents it spawned."""

    calls: list[_Call] = field(default_factory=list)
    children: list[tuple[float, int, "_Agent"]] = field(default_factory=list)  # (spawn t, parent call index, agent)


def load_claude_code(path: str | os.PathLike, *, limit: Optional[int] = None, max_tokens: Optional[int] = None,
                     first_id: int = 0) -> Iterator[Session]:
    """Stream WEKA Claude Code sessions (raw JSON lines or the flattened CSV; see the module notes)."""
    p = check_args(path, limit, max_tokens, first_id)
    return _sessions(p, limit, max_tokens, first_id)


def _sessions(path: str, limit: Optional[int], max_tokens: Optional[int], first_id: int) -> Iterator[Session]:
    with open_binary(path, "Claude Code trace (JSON lines or CSV)") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        f.seek(0)
        trees = _raw_sessions(path, f) if head.startswith(b"{") else _csv_sessions(path, f)
        count = 0
        for sid_text, root in trees:
            sid = first_id + count
            yield _session(sid, sid_text, root, max_tokens)
            count += 1
            if limit is not None and count >= limit:
                return
        if count == 0:
            raise empty_file(path, "one session per JSON line, or a CSV with the columns " + ",".join(CSV_COLUMNS))


def _in_order(path: str, n: int, agent: "_Agent", t: float, name: str) -> None:
    """An agent's calls (and its subagents' spawns) come in time order: a call earlier than the one
    before it would be clamped to a 0 s gap, or make the next gap span the difference."""
    if agent.calls and t < agent.calls[-1].t:
        raise InputError(f"{path}: line {n}: {name} = {t:g} is earlier than the agent's previous call "
                         f"(t = {agent.calls[-1].t:g}): expected times in non-decreasing order")


# --- building the DAG ------------------------------------------------------------------------------

def _gap(calls: Sequence[_Call], i: int) -> float:
    c = calls[i]
    if c.think is not None:
        return c.think
    prev = calls[i - 1]
    return max(0.0, c.t - prev.t - (prev.api or 0.0))


def _add_chain(b: DagBuilder, agent: _Agent, deps: tuple[int, ...], first_gap: float,
               max_tokens: Optional[int], sid: int) -> None:
    ids = []
    for i, c in enumerate(agent.calls):
        gap = first_gap if i == 0 else _gap(agent.calls, i)
        if gap > 0:
            deps = (b.tool("client" if c.tool_result or i == 0 else "human", gap, deps).id,)
        prompt, out = cap_call(_relabel(c.prompt, sid), c.out, max_tokens)
        deps = (b.llm(prompt, out, deps).id,)
        ids.append(deps[0])
    for spawn_t, parent, child in agent.children:
        p = agent.calls[parent]
        _add_chain(b, child, (ids[parent],), max(0.0, spawn_t - p.t - (p.api or 0.0)), max_tokens, sid)


def _relabel(prompt: tuple[Segment, ...], sid: int) -> tuple[Segment, ...]:
    """Per-session keys are built with a placeholder ``s?:`` and given the session id here."""
    return tuple(Segment(f"s{sid}:{s.key[3:]}", s.tokens) if s.key.startswith("s?:") else s for s in prompt)


def _session(sid: int, trace_id: str, root: _Agent, max_tokens: Optional[int]) -> Session:
    b = DagBuilder(sid)
    _add_chain(b, root, (), 0.0, max_tokens, sid)
    return b.session(AGENT_LABEL, 0.0)


# --- raw JSON lines ----------------------------------------------------------------------------------

def _raw_sessions(path: str, f: IO[bytes]) -> Iterator[tuple[str, _Agent]]:
    for n, obj in json_lines(path, f, "one Claude Code session per line"):
        bs = get_int(path, n, obj, "block_size", low=1) if "block_size" in obj else WEKA_BLOCK_TOKENS
        scope = obj.get("hash_id_scope", "local")
        if scope not in ("local", "global"):
            raise InputError(f"{path}: line {n}: hash_id_scope = {scope!r}: expected 'local' or 'global'")
        prefix = "s?:h" if scope == "local" else "claude-code:h"
        root = _raw_agent(path, n, get_list(path, n, obj, "requests"), "requests", bs, prefix, "root")
        if not root.calls:
            raise InputError(f"{path}: line {n}: requests has no LLM call: expected at least one request")
        yield str(obj.get("id", n)), root


def _raw_agent(path: str, n: int, requests: list, where: str, bs: int, prefix: str, name: str) -> _Agent:
    agent = _Agent()
    for i, r in enumerate(requests):
        w = f"{where}[{i}]."
        if not isinstance(r, dict):
            raise InputError(f"{path}: line {n}: {where}[{i}] = {r!r}: expected a request object")
        if r.get("type") == "subagent":
            spawn = get_time(path, n, r, "t", w)
            if not agent.calls:
                raise InputError(f"{path}: line {n}: {w[:-1]} is a subagent before any call: "
                                 f"expected a parent call before it")
            _in_order(path, n, agent, spawn, f"{w}t")
            child = _raw_agent(path, n, get_list(path, n, r, "requests", w), w + "requests", bs, prefix,
                               str(r.get("agent_id", f"{name}.{i}")))
            if child.calls:
                agent.children.append((spawn, len(agent.calls) - 1, child))
            continue
        inp = get_int(path, n, r, "in", w, low=1)
        ids = get_list(path, n, r, "hash_ids", w)
        if len(ids) * bs >= inp + bs:
            raise InputError(f"{path}: line {n}: {w}hash_ids has {len(ids)} blocks of {bs} for in = {inp}: "
                             f"expected at most ceil({inp} / {bs})")
        segs = []
        for j, h in enumerate(ids):
            if isinstance(h, bool) or not isinstance(h, int):
                raise InputError(f"{path}: line {n}: {w}hash_ids[{j}] = {h!r}: expected an integer id")
            segs.append(Segment(f"{prefix}{h}", min(bs, inp - bs * j)))
        rest = inp - bs * len(ids)
        if rest > 0:
            segs.append(Segment(f"s?:{name}.r{len(agent.calls)}", rest))
        types = r.get("input_types", [])
        _in_order(path, n, agent, get_time(path, n, r, "t", w), f"{w}t")
        agent.calls.append(_Call(t=get_time(path, n, r, "t", w), api=get_time(path, n, r, "api_time", w, optional=True),
                                 think=get_time(path, n, r, "think_time", w, optional=True),
                                 tool_result=isinstance(types, list) and "tool_result" in types,
                                 prompt=tuple(segs), out=max(1, get_int(path, n, r, "out", w))))
    return agent


# --- flattened CSV ---------------------------------------------------------------------------------

def _csv_sessions(path: str, f: IO[bytes]) -> Iterator[tuple[str, _Agent]]:
    lines = text_lines(path, f)
    cols = None
    for n, text in lines:
        if text.strip():
            names = [c.strip() for c in text.split(",")]
            missing = [c for c in CSV_COLUMNS if c not in names]
            if missing:
                raise InputError(f"{path}: line {n}: header lacks {', '.join(missing)}: expected the columns "
                                 f"{','.join(CSV_COLUMNS)}")
            cols = {c: names.index(c) for c in CSV_COLUMNS}
            width = len(names)
            break
    if cols is None:
        return
    done: set[str] = set()
    current: Optional[str] = None
    start_line = 0
    agents: dict[str, _Agent] = {}
    spawns: dict[str, float] = {}
    for n, text in lines:
        if text.strip() == "":
            continue
        try:
            cells = next(csv.reader([text]), [])
        except csv.Error as e:
            raise InputError(f"{path}: line {n}: malformed CSV ({e}): expected comma-separated fields") from None
        if len(cells) != width:
            raise InputError(f"{path}: line {n}: {len(cells)} fields: expected {width} (as the header)")
        row = {c: cells[i].strip() for c, i in cols.items()}
        tid = row["trace_id"]
        if tid != current:
            if current is not None:
                yield current, _tree(path, start_line, current, agents, spawns)
                done.add(current)
            if tid in done or tid == "":
                raise InputError(f"{path}: line {n}: trace_id = {tid!r} appears again after other traces: "
                                 f"expected the rows of one trace together")
            current, agents, spawns, start_line = tid, {}, {}, n
        name = row["agent"] or "root"
        agent = agents.setdefault(name, _Agent())
        idx = _csv_int(path, n, row, "req_idx")
        if idx != len(agent.calls):
            raise InputError(f"{path}: line {n}: req_idx = {idx} for agent {name!r}: expected {len(agent.calls)} "
                             f"(each agent's calls in order from 0)")
        if name != "root":
            spawns.setdefault(name, _csv_time(path, n, row, "spawn_t_s"))
        inp = _csv_int(path, n, row, "in_tokens", low=1)
        shared = WEKA_BLOCK_TOKENS * _csv_int(path, n, row, "prefix_blocks_shared_with_prev")
        prev = agent.calls[-1].prompt if agent.calls else ()
        head = take_prefix(prev, min(shared, inp)) if prev else ()
        new = inp - sum(s.tokens for s in head)
        prompt = head + ((Segment(f"s?:{name}.p{idx}", new),) if new > 0 else ())
        _in_order(path, n, agent, _csv_time(path, n, row, "t_s"), "t_s")
        agent.calls.append(_Call(t=_csv_time(path, n, row, "t_s"), api=_csv_time(path, n, row, "api_time_s", True),
                                 think=_csv_time(path, n, row, "think_time_s", True),
                                 tool_result="tool_result" in row["input_types"].split("|"), prompt=prompt,
                                 out=max(1, _csv_int(path, n, row, "out_tokens"))))
    if current is not None:
        yield current, _tree(path, start_line, current, agents, spawns)


def _tree(path: str, line: int, trace_id: str, agents: dict[str, _Agent], spawns: dict[str, float]) -> _Agent:
    root = agents.get("root")
    if root is None:
        raise InputError(f"{path}: line {line}: trace_id {trace_id!r} has no agent = root rows: "
                         f"expected the main agent's calls")
    for name, agent in agents.items():
        if name == "root":
            continue
        spawn = spawns[name]
        parent = max((i for i, c in enumerate(root.calls) if c.t <= spawn), default=0)
        root.children.append((spawn, parent, agent))
    return root


def _csv_int(path: str, n: int, row: dict, key: str, low: int = 0) -> int:
    s = row[key]
    try:
        v = float(s)
    except ValueError:
        v = float("nan")
    if not (v == v and v.is_integer() and v >= low):
        raise InputError(f"{path}: line {n}: {key} = {s!r}: expected an integer >= {low}")
    return int(v)


def _csv_time(path: str, n: int, row: dict, key: str, optional: bool = False) -> Optional[float]:
    s = row[key]
    if s == "" and optional:
        return None
    try:
        v = float(s)
    except ValueError:
        v = float("nan")
    if not (v == v and v >= 0 and v != float("inf")):
        raise InputError(f"{path}: line {n}: {key} = {s!r}: expected a number >= 0"
                         + (" or empty" if optional else ""))
    return v
