"""Loaders: recorded traces → streams of Sessions, checked line by line.

``load_trace(format, path, limit=..., max_tokens=...)`` is the one entry point; ``LOADERS`` names
the formats:

* ``azure-2023``  Azure LLM inference trace 2023/2024 CSV (this module);
* ``mooncake``    Mooncake FAST'25 JSONL with 512-token prefix hashes (``load_mooncake``);
* ``claude-code`` WEKA Claude Code sessions, raw JSON lines or flattened CSV (``load_claude_code``);
* ``tracelab``    TraceLab coding-agent rounds with per-tool latency (``load_tracelab``);
* ``vidur-csv``   Vidur's request CSV, both header variants (``load_vidur``).

Small cuts of public traces ship in ``traces/data/`` (``BUNDLED_TRACES``; source, licence and cut
in ``traces/data/README.md``).

Azure LLM inference trace 2023 (Splitwise; ``docs/traces-sources.md`` §1, docs/traces-survey.md §1.1):
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
from importlib import resources
from pathlib import Path
from typing import IO, Callable, Iterator, Optional

from agentwatt.core.errors import InputError
from agentwatt.traces.load_claude_code import load_claude_code
from agentwatt.traces.load_mooncake import load_mooncake
from agentwatt.traces.load_tracelab import load_tracelab
from agentwatt.traces.load_vidur import load_vidur_csv
from agentwatt.traces.readers import check_regular, parse_timestamp, shown, text_lines
from agentwatt.traces.schema import LLMCall, Segment, Session

__all__ = ["AZURE_COLUMNS", "BUNDLED_TRACES", "BUNDLED_FORMATS", "LOADERS", "bundled_trace_path", "load_azure_2023",
           "load_trace", "parse_timestamp", "resolve_trace"]

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")

BUNDLED_TRACES = {
    # name → file in traces/data/ (see traces/data/README.md for source, licence and cut)
    "azure-conv-head2000": "azure_llm_2023_conv_head2000.csv",
    "mooncake-conv-head1000": "mooncake_fast25_conversation_head1000.jsonl",
    "claude-code-sample": "weka_claude_code_sample4.jsonl",
    "tracelab-example": "tracelab_example_rounds.jsonl",
}
BUNDLED_FORMATS = {
    # name → the LOADERS format that reads it
    "azure-conv-head2000": "azure-2023",
    "mooncake-conv-head1000": "mooncake",
    "claude-code-sample": "claude-code",
    "tracelab-example": "tracelab",
}

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
    check_regular(path, "CSV file")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror}): expected a readable CSV file") from None
    with f:
        yield from _azure_rows(path, f, limit, max_tokens, agent, first_id)


def _azure_header(path: str, lines: Iterator[tuple[int, str]]) -> tuple[int, int, int, int]:
    """Read the header; return the column count and the indices of the three columns."""
    expected = ",".join(AZURE_COLUMNS)
    for n, text in lines:
        if text.strip() == "":
            continue
        names = [c.strip() for c in text.split(",")]
        missing = [c for c in AZURE_COLUMNS if c not in names]
        if missing:
            raise InputError(f"{path}: line {n}: header {shown(text)} lacks {', '.join(missing)}: "
                             f"expected the columns {expected}")
        i_ts, i_in, i_out = (names.index(c) for c in AZURE_COLUMNS)
        return len(names), i_ts, i_in, i_out
    raise InputError(f"{path}: line 1: empty file: expected a header {expected}")


def _count(path: str, n: int, column: str, text: str) -> int:
    s = text.strip()
    if _COUNT.fullmatch(s) is None:
        raise InputError(f"{path}: line {n}: {column} = {shown(s)}: expected an integer >= 0")
    if len(s) > 18:   # int() refuses > 4,300 digits; no token count has 19
        raise InputError(f"{path}: line {n}: {column} = {shown(s)}: expected an integer >= 0 of at most 18 digits")
    return int(s)


def _azure_rows(path: str, f: IO[bytes], limit: Optional[int], max_tokens: Optional[int], agent: str,
                first_id: int) -> Iterator[Session]:
    lines = text_lines(path, f)
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
            raise InputError(f"{path}: line {n}: {len(cells)} fields in {shown(text)}: expected {n_cols} "
                             f"({','.join(AZURE_COLUMNS)})")
        ts_text = cells[i_ts].strip()
        ts = parse_timestamp(ts_text)
        if ts is None:
            raise InputError(f"{path}: line {n}: TIMESTAMP = {shown(ts_text)}: expected a time like {_TS_EXAMPLE}")
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


# --- one entry point -------------------------------------------------------------------------------

def _azure_2023(path: str | os.PathLike, *, limit: Optional[int] = None,
                max_tokens: Optional[int] = None) -> Iterator[Session]:
    label = "azure-code" if "code" in Path(path).name else "azure-conv"
    return load_azure_2023(path, limit=limit, max_tokens=max_tokens, agent=label)


Loader = Callable[..., Iterator[Session]]

LOADERS: dict[str, Loader] = {
    "azure-2023": _azure_2023,
    "mooncake": load_mooncake,
    "claude-code": load_claude_code,
    "tracelab": load_tracelab,
    "vidur-csv": load_vidur_csv,
}


def load_trace(format: str, path: str | os.PathLike, *, limit: Optional[int] = None,
               max_tokens: Optional[int] = None) -> Iterator[Session]:
    """Stream the sessions of a trace file in ``format`` (a key of ``LOADERS``).

    ``path`` may also be the name of a bundled trace. Arguments are checked now; the file as it is read.
    """
    loader = LOADERS.get(format)
    if loader is None:
        raise InputError(f"trace format {format!r}: unknown format: expected one of {', '.join(sorted(LOADERS))}")
    return loader(resolve_trace(path), limit=limit, max_tokens=max_tokens)


def resolve_trace(path_or_name: str | os.PathLike) -> Path:
    """The file of a bundled trace name, or ``path_or_name`` itself."""
    name = os.fspath(path_or_name)
    return bundled_trace_path(name) if name in BUNDLED_TRACES else Path(name)
