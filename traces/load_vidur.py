"""Vidur-style request CSVs (``docs/anchors.md`` §5): one request per row, so that the same file
can drive Vidur and this simulator side by side.

Two header variants are read, by column name:

* Vidur's GitHub main: ``arrived_at`` (seconds), ``num_prefill_tokens``, ``num_decode_tokens``;
* the PyPI 0.0.26 schema: ``Date``, ``Time`` (seconds), ``PromptTokenCount``, ``CompletionTokenCount``
  (Vidur replays one ``Date``, so every row must carry the same one).

Each row is a one-call session with a unique prompt (``s{id}:q``); ``arrival_s`` is seconds after
the first row. Counts of 0 become 1 and ``max_tokens`` caps prompt + output, as in Vidur's replay.
Vidur's own ``prefill_scale_factor`` / ``time_scale_factor`` defaults (0.3 / 0.04) are *not*
applied: pass the numbers you want in the file (docs/anchors.md §5 warns about those defaults).
"""
from __future__ import annotations

import csv
import os
from typing import IO, Iterator, Optional

from agentwatt.core.errors import InputError
from agentwatt.traces.readers import cap_call, check_args, empty_file, open_binary, text_lines
from agentwatt.traces.schema import LLMCall, Segment, Session

MAIN_COLUMNS = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")
PYPI_COLUMNS = ("Time", "PromptTokenCount", "CompletionTokenCount")
_EXPECTED = f"the columns {','.join(MAIN_COLUMNS)} (Vidur main) or Date,{','.join(PYPI_COLUMNS)} (Vidur 0.0.26)"


def load_vidur_csv(path: str | os.PathLike, *, limit: Optional[int] = None, max_tokens: Optional[int] = None,
                   first_id: int = 0, agent: str = "vidur-csv") -> Iterator[Session]:
    """Stream a Vidur trace CSV as single-call sessions (arguments checked now, rows as read)."""
    p = check_args(path, limit, max_tokens, first_id)
    return _sessions(p, limit, max_tokens, first_id, agent)


def _number(path: str, n: int, column: str, text: str, *, integer: bool) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    ok = v == v and v >= 0 and v != float("inf") and (v.is_integer() or not integer)
    if not ok:
        raise InputError(f"{path}: line {n}: {column} = {text!r}: expected "
                         f"{'an integer >= 0' if integer else 'a time in seconds >= 0'}")
    return v


def _split(path: str, n: int, text: str) -> list[str]:
    """One CSV line's fields; a malformed line (e.g. a stray carriage return) is an InputError."""
    try:
        return next(csv.reader([text]), [])
    except csv.Error as e:
        raise InputError(f"{path}: line {n}: malformed CSV ({e}): expected comma-separated fields") from None


def _header(path: str, lines: Iterator[tuple[int, str]]
            ) -> tuple[int, tuple[str, str, str], tuple[int, int, int], Optional[int]]:
    """(column count, the schema's column names, their indices, index of Date or None)."""
    for n, text in lines:
        if text.strip() == "":
            continue
        names = [c.strip() for c in _split(path, n, text)]
        for cols in (MAIN_COLUMNS, PYPI_COLUMNS):
            if all(c in names for c in cols):
                date = names.index("Date") if cols is PYPI_COLUMNS and "Date" in names else None
                return len(names), cols, tuple(names.index(c) for c in cols), date
        raise InputError(f"{path}: line {n}: header {text!r} lacks the request columns: expected {_EXPECTED}")
    raise empty_file(path, f"a header with {_EXPECTED}")


def _sessions(path: str, limit: Optional[int], max_tokens: Optional[int], first_id: int,
              agent: str) -> Iterator[Session]:
    with open_binary(path, "Vidur trace CSV") as f:
        yield from _rows(path, f, limit, max_tokens, first_id, agent)


def _rows(path: str, f: IO[bytes], limit: Optional[int], max_tokens: Optional[int], first_id: int,
          agent: str) -> Iterator[Session]:
    lines = text_lines(path, f)
    width, cols, (i_t, i_in, i_out), i_date = _header(path, lines)
    first_t: Optional[float] = None
    prev = (0.0, 0)
    date: Optional[str] = None
    count = 0
    last_line = 1
    for n, text in lines:
        last_line = n
        if text.strip() == "":
            continue
        cells = [c.strip() for c in _split(path, n, text)]
        if len(cells) != width:
            raise InputError(f"{path}: line {n}: {len(cells)} fields in {text!r}: expected {width} (as the header)")
        t = _number(path, n, cols[0], cells[i_t], integer=False)
        prompt = max(1, int(_number(path, n, cols[1], cells[i_in], integer=True)))
        output = max(1, int(_number(path, n, cols[2], cells[i_out], integer=True)))
        if i_date is not None:
            if date is None:
                date = cells[i_date]
            elif cells[i_date] != date:
                raise InputError(f"{path}: line {n}: Date = {cells[i_date]!r} differs from the first row's {date!r}: "
                                 f"expected one date (Vidur replays one --trace_request_generator_config_date)")
        if first_t is None:
            first_t = t
        elif t < prev[0]:
            raise InputError(f"{path}: line {n}: {cols[0]} = {cells[i_t]!r} is earlier than line {prev[1]} "
                             f"({prev[0]:g}): expected times in non-decreasing order")
        prev = (t, n)
        sid = first_id + count
        segs, output = cap_call((Segment(f"s{sid}:q", prompt),), output, max_tokens)
        call = LLMCall(id=0, prompt=segs, output_tokens=output, output_key=f"s{sid}:o0")
        yield Session(id=sid, agent=agent, arrival_s=t - first_t, nodes=(call,))
        count += 1
        if limit is not None and count >= limit:
            return
    if count == 0:
        raise InputError(f"{path}: line {last_line + 1}: no data rows after the header: "
                         f"expected at least one request")
