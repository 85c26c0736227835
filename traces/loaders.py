"""Loaders: recorded traces → streams of Sessions, checked line by line.

Azure LLM inference trace 2023 (Splitwise; ``shared/traces/README.md`` §1, traces-survey §1.1):
a CSV with a header ``TIMESTAMP,ContextTokens,GeneratedTokens``, one request per row, sorted by
time. ``TIMESTAMP`` is wall clock with 7 fractional digits (``2023-11-16 18:15:46.6805900``); the
2024 week-long files use the same columns with a time zone and mixed precision
(``2024-05-12 00:00:00.001163+00:00``), which this loader also reads. The published files do not
end with a newline.

Every problem is an ``InputError`` worded ``"{path}: line {n}: {what was wrong}: expected {what}"``.
"""
from __future__ import annotations

import os
import re
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import IO, Iterator, Optional

from agentwatt.errors import InputError
from agentwatt.traces.schema import LLMCall, Segment, Session

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")

BUNDLED_TRACES = {
    # name → file in traces/data/ (see traces/data/README.md for source, licence and cut)
    "azure-conv-head2000": "azure_llm_2023_conv_head2000.csv",
}

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:(Z)|([+-])(\d{2}):?(\d{2}))?"
)
_COUNT = re.compile(r"\d+")
_TS_EXAMPLE = "2023-11-16 18:15:46.6805900"


def bundled_trace_path(name: str) -> Path:
    """Path of a trace cut shipped inside the package, e.g. ``"azure-conv-head2000"``."""
    file = BUNDLED_TRACES.get(name)
    if file is None:
        raise InputError(f"bundled trace {name!r}: unknown name: expected one of {', '.join(sorted(BUNDLED_TRACES))}")
    res = resources.files("agentwatt.traces").joinpath("data", file)
    if not res.is_file():
        raise InputError(f"bundled trace {name!r}: {file} is missing from the installed package: "
                         f"expected it under agentwatt/traces/data/ (reinstall agentwatt)")
    return Path(str(res))


def parse_timestamp(text: str) -> Optional[tuple[int, float, bool]]:
    """``(whole seconds, fraction of a second, has time zone)`` of a trace timestamp, or ``None``.

    Whole seconds count from 0001-01-01 (UTC when a zone is given); only differences matter.
    Parsed here rather than by ``datetime.fromisoformat``, which rejects 7 fractional digits
    before Python 3.11 and rounds to microseconds after.
    """
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    try:
        day = datetime(y, mo, d, h, mi, s).toordinal()
    except ValueError:
        return None
    whole = day * 86400 + h * 3600 + mi * 60 + s
    digits = m.group(7) or ""
    fraction = int(digits) / 10 ** len(digits) if digits else 0.0
    has_zone = m.group(8) is not None or m.group(9) is not None
    if m.group(9) is not None:
        offset_s = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        whole -= offset_s if m.group(9) == "+" else -offset_s
    return whole, fraction, has_zone


def load_azure_2023(path: str | os.PathLike, *, limit: Optional[int] = None, max_tokens: Optional[int] = None,
                    agent: str = "azure-conv", first_id: int = 0) -> Iterator[Session]:
    """Stream an Azure LLM inference trace as single-call sessions, one per row.

    * ``arrival_s`` is seconds after the first row's timestamp (the first session arrives at 0).
    * The prompt is one segment unique to the row (``s{id}:q``): the trace has no prefix data.
    * Token counts of 0 become 1, as Vidur's trace replay does (a served request computes at least
      one prompt token and emits at least one token). The 2023 files have no zeros.
    * ``max_tokens`` caps prompt + output as Vidur's trace replay does, by shortening the prompt;
      the output is first capped at ``max_tokens - 1`` so the prompt keeps at least one token.
    * ``limit`` stops after that many sessions. ``agent`` labels the sessions ("azure-conv" or
      "azure-code"); ids run from ``first_id``.

    The arguments are checked now; the file is opened and checked as the stream is read.
    """
    if limit is not None and not (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1):
        raise InputError(f"{os.fspath(path)}: limit = {limit!r}: expected an integer >= 1 or None")
    if max_tokens is not None and not (isinstance(max_tokens, int) and not isinstance(max_tokens, bool)
                                       and max_tokens >= 2):
        raise InputError(f"{os.fspath(path)}: max_tokens = {max_tokens!r}: expected an integer >= 2 or None")
    if not (isinstance(agent, str) and agent):
        raise InputError(f"{os.fspath(path)}: agent = {agent!r}: expected a non-empty label like 'azure-conv'")
    if not (isinstance(first_id, int) and first_id >= 0):
        raise InputError(f"{os.fspath(path)}: first_id = {first_id!r}: expected an integer >= 0")
    return _azure_sessions(os.fspath(path), limit, max_tokens, agent, first_id)


def _azure_sessions(path: str, limit: Optional[int], max_tokens: Optional[int], agent: str,
                    first_id: int) -> Iterator[Session]:
    try:
        f = open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror}): expected a readable CSV file") from None
    with f:
        yield from _azure_rows(path, f, limit, max_tokens, agent, first_id)


def _text_lines(path: str, f: IO[bytes]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line, decoded as UTF-8, without its line ending."""
    for n, raw in enumerate(f, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{path}: line {n}: byte 0x{raw[e.start]:02x} at column {e.start + 1} is not UTF-8: "
                             f"expected a UTF-8 text file") from None
        if n == 1:
            text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
        yield n, text.rstrip("\r\n")


def _azure_header(path: str, lines: Iterator[tuple[int, str]]) -> tuple[int, int, int, int]:
    """Read the header; return the column count and the indices of the three columns."""
    expected = ",".join(AZURE_COLUMNS)
    for n, text in lines:
        if text.strip() == "":
            continue
        names = [c.strip() for c in text.split(",")]
        missing = [c for c in AZURE_COLUMNS if c not in names]
        if missing:
            raise InputError(f"{path}: line {n}: header {text!r} lacks {', '.join(missing)}: "
                             f"expected the columns {expected}")
        i_ts, i_in, i_out = (names.index(c) for c in AZURE_COLUMNS)
        return len(names), i_ts, i_in, i_out
    raise InputError(f"{path}: line 1: empty file: expected a header {expected}")


def _count(path: str, n: int, column: str, text: str) -> int:
    s = text.strip()
    if _COUNT.fullmatch(s) is None:
        raise InputError(f"{path}: line {n}: {column} = {s!r}: expected an integer >= 0")
    return int(s)


def _azure_rows(path: str, f: IO[bytes], limit: Optional[int], max_tokens: Optional[int], agent: str,
                first_id: int) -> Iterator[Session]:
    lines = _text_lines(path, f)
    n_cols, i_ts, i_in, i_out = _azure_header(path, lines)
    first: Optional[tuple[int, float, bool]] = None
    prev: tuple[int, float, int, str] = (0, 0.0, 0, "")  # whole, fraction, line, text of the previous row
    count = 0
    last_line = 1
    for n, text in lines:
        last_line = n
        if text.strip() == "":
            continue
        cells = text.split(",")
        if len(cells) != n_cols:
            raise InputError(f"{path}: line {n}: {len(cells)} fields in {text!r}: expected {n_cols} "
                             f"({','.join(AZURE_COLUMNS)})")
        ts_text = cells[i_ts].strip()
        ts = parse_timestamp(ts_text)
        if ts is None:
            raise InputError(f"{path}: line {n}: TIMESTAMP = {ts_text!r}: expected a time like {_TS_EXAMPLE}")
        prompt = max(1, _count(path, n, "ContextTokens", cells[i_in]))
        output = max(1, _count(path, n, "GeneratedTokens", cells[i_out]))
        if first is None:
            first = ts
        elif ts[2] != first[2]:
            has = "has a" if ts[2] else "has no"
            raise InputError(f"{path}: line {n}: TIMESTAMP = {ts_text!r} {has} time zone, unlike the first row: "
                             f"expected every timestamp with a time zone or every one without")
        elif (ts[0], ts[1]) < (prev[0], prev[1]):
            raise InputError(f"{path}: line {n}: TIMESTAMP = {ts_text!r} is earlier than line {prev[2]} "
                             f"({prev[3]!r}): expected timestamps in non-decreasing order")
        prev = (ts[0], ts[1], n, ts_text)
        if max_tokens is not None:
            output = min(output, max_tokens - 1)
            prompt = min(prompt, max_tokens - output)
        sid = first_id + count
        call = LLMCall(id=0, prompt=(Segment(f"s{sid}:q", prompt),), output_tokens=output,
                       output_key=f"s{sid}:o0")
        arrival_s = (ts[0] - first[0]) + (ts[1] - first[1])
        yield Session(id=sid, agent=agent, arrival_s=arrival_s, nodes=(call,))
        count += 1
        if limit is not None and count >= limit:
            return
    if count == 0:
        raise InputError(f"{path}: line {last_line + 1}: no data rows after the header: "
                         f"expected at least one request")
