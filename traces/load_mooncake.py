"""Mooncake (Kimi) FAST'25 traces: one request per JSON line (``docs/traces-sources.md`` §2,
docs/traces-survey.md §2.2).

Fields: ``timestamp`` (ms from the trace start), ``input_length``, ``output_length`` and
``hash_ids``, the remapped ids of the prompt's **512-token** blocks (the last block holds the
remainder): ``len(hash_ids) == ceil(input_length / 512)``. Equal leading ids mean a shared KV prefix.

Each request becomes a one-call session whose prompt is one segment per hash id, keyed
``mooncake:{hash_id}`` — *not* prefixed by the session id, so identical hash prefixes are the same
content across requests and hit the simulator's prefix cache (unbounded-cache hit ratio of the
conversation trace ≈ 0.37, docs/traces-survey.md §2.2). ``arrival_s`` is seconds after the first request.
"""
from __future__ import annotations

import os
from typing import Iterator, Optional

from agentwatt.core.errors import InputError
from agentwatt.traces.readers import cap_call, check_args, empty_file, get_int, get_list, get_time, json_lines, open_binary
from agentwatt.traces.schema import LLMCall, Segment, Session

MOONCAKE_BLOCK_TOKENS = 512  # [Q] docs/traces-survey.md §2.2 / Mooncake FAST25-release README: 512 tokens per hash block
_WHAT = '{"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [...]}'


def load_mooncake(path: str | os.PathLike, *, limit: Optional[int] = None, max_tokens: Optional[int] = None,
                  first_id: int = 0, agent: str = "mooncake") -> Iterator[Session]:
    """Stream a Mooncake JSONL trace as single-call sessions (arguments checked now, lines as read)."""
    p = check_args(path, limit, max_tokens, first_id)
    return _sessions(p, limit, max_tokens, first_id, agent)


def mooncake_prompt(hash_ids: list[int], input_length: int) -> tuple[Segment, ...]:
    """One ``mooncake:{id}`` segment of 512 tokens per hash id, the last one the remainder."""
    last = input_length - MOONCAKE_BLOCK_TOKENS * (len(hash_ids) - 1)
    return tuple(Segment(f"mooncake:{h}", MOONCAKE_BLOCK_TOKENS if i < len(hash_ids) - 1 else last)
                 for i, h in enumerate(hash_ids))


def _sessions(path: str, limit: Optional[int], max_tokens: Optional[int], first_id: int,
              agent: str) -> Iterator[Session]:
    with open_binary(path, "Mooncake JSONL file") as f:
        first_ms: Optional[float] = None
        prev = (0.0, 0)
        count = 0
        for n, obj in json_lines(path, f, _WHAT):
            ts = get_time(path, n, obj, "timestamp")
            inp = get_int(path, n, obj, "input_length", low=1)
            out = max(1, get_int(path, n, obj, "output_length"))
            ids = get_list(path, n, obj, "hash_ids")
            blocks = -(-inp // MOONCAKE_BLOCK_TOKENS)
            if len(ids) != blocks:
                raise InputError(f"{path}: line {n}: hash_ids has {len(ids)} ids for input_length {inp}: "
                                 f"expected ceil({inp} / {MOONCAKE_BLOCK_TOKENS}) = {blocks}")
            for i, h in enumerate(ids):
                if isinstance(h, bool) or not isinstance(h, int) or h < 0:
                    raise InputError(f"{path}: line {n}: hash_ids[{i}] = {h!r}: expected an integer id >= 0")
            if first_ms is None:
                first_ms = ts
            elif ts < prev[0]:
                raise InputError(f"{path}: line {n}: timestamp = {ts:g} is earlier than line {prev[1]} "
                                 f"({prev[0]:g}): expected timestamps in non-decreasing order")
            prev = (ts, n)
            sid = first_id + count
            prompt, out = cap_call(mooncake_prompt(ids, inp), out, max_tokens)
            call = LLMCall(id=0, prompt=prompt, output_tokens=out, output_key=f"s{sid}:o0")
            yield Session(id=sid, agent=agent, arrival_s=(ts - first_ms) / 1000.0, nodes=(call,))
            count += 1
            if limit is not None and count >= limit:
                return
        if count == 0:
            raise empty_file(path, f"one JSON object per line ({_WHAT})")
