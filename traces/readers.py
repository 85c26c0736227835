"""Shared pieces of the trace loaders: opening a file, reading checked UTF-8 lines, JSON lines, argument
checks and capping a call at ``max_tokens``. Every problem is an ``InputError`` worded
``"{path}: line {n}: {what was wrong}: expected {what}"`` (the first bad line wins).
"""
from __future__ import annotations

import json
import math
import os
import re
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any, Iterator, Optional, Sequence

from agentwatt.core.errors import InputError
from agentwatt.traces.schema import Segment


def check_args(path: str | os.PathLike, limit: Optional[int], max_tokens: Optional[int], first_id: int = 0) -> str:
    """Eager checks shared by every loader; returns the path as text."""
    p = os.fspath(path)
    if limit is not None and not (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1):
        raise InputError(f"{p}: limit = {limit!r}: expected an integer >= 1 or None")
    if max_tokens is not None and not (isinstance(max_tokens, int) and not isinstance(max_tokens, bool)
                                       and max_tokens >= 2):
        raise InputError(f"{p}: max_tokens = {max_tokens!r}: expected an integer >= 2 or None")
    if not (isinstance(first_id, int) and not isinstance(first_id, bool) and first_id >= 0):
        raise InputError(f"{p}: first_id = {first_id!r}: expected an integer >= 0")
    return p


def shown(text: str, limit: int = 80) -> str:
    """``repr(text)`` for an error message, cut to ``limit`` characters: a bad line can be 200 MB."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def check_regular(path: str, what: str) -> None:
    """A trace must be a regular file: reading a FIFO blocks until a writer comes, /dev/zero never
    ends a line."""
    import stat
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror}): expected a readable {what}") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: not a regular file (a folder, device or pipe): expected a {what}")


@contextmanager
def open_binary(path: str, what: str) -> Iterator[IO[bytes]]:
    check_regular(path, what)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror}): expected a readable {what}") from None
    with f:
        yield f


def text_lines(path: str, f: IO[bytes]) -> Iterator[tuple[int, str]]:
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


def json_lines(path: str, f: IO[bytes], what: str) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` of each non-blank line, which must be one JSON object."""
    for n, text in text_lines(path, f):
        if text.strip() == "":
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: line {n}: not JSON ({e.msg} at column {e.colno}): "
                             f"expected one JSON object per line ({what})") from None
        except (ValueError, RecursionError) as e:   # an integer of > 4,300 digits; nesting ~1,000 deep
            raise InputError(f"{path}: line {n}: not usable JSON ({str(e).splitlines()[0][:80]}): "
                             f"expected one JSON object per line ({what})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}: line {n}: a JSON {type(obj).__name__}: expected one JSON object per line "
                             f"({what})")
        yield n, obj


def empty_file(path: str, expected: str) -> InputError:
    return InputError(f"{path}: line 1: empty file: expected {expected}")


# --- typed fields of a JSON object ----------------------------------------------------------------

def get_int(path: str, n: int, obj: dict, key: str, where: str = "", *, low: int = 0) -> int:
    """``obj[key]`` as an integer >= ``low`` (JSON ``3`` or ``3.0``)."""
    v = obj.get(key, _MISSING)
    name = f"{where}{key}"
    if v is _MISSING:
        raise InputError(f"{path}: line {n}: {name} missing: expected an integer >= {low}")
    ok = (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    if not ok or v < low:
        raise InputError(f"{path}: line {n}: {name} = {v!r}: expected an integer >= {low}")
    return int(v)


def get_time(path: str, n: int, obj: dict, key: str, where: str = "", *, optional: bool = False) -> Optional[float]:
    """``obj[key]`` as a finite number >= 0 (``None`` allowed when ``optional``)."""
    v = obj.get(key, _MISSING)
    name = f"{where}{key}"
    if v is _MISSING or v is None:
        if optional:
            return None
        raise InputError(f"{path}: line {n}: {name} missing: expected a number >= 0")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise InputError(f"{path}: line {n}: {name} = {v!r}: expected a number >= 0")
    return float(v)


def get_list(path: str, n: int, obj: dict, key: str, where: str = "") -> list:
    v = obj.get(key, _MISSING)
    if not isinstance(v, list):
        shown = "missing" if v is _MISSING else f"= {v!r}"
        raise InputError(f"{path}: line {n}: {where}{key} {shown}: expected a list")
    return v


class _Missing:
    def __repr__(self) -> str:
        return "missing"


_MISSING: Any = _Missing()


# --- prompts --------------------------------------------------------------------------------------

def take_prefix(segments: Sequence[Segment], tokens: int) -> tuple[Segment, ...]:
    """The first ``tokens`` tokens of a segment sequence (the last segment cut short if needed).

    A cut segment keeps its key, so its full blocks hash like the same blocks of the uncut one.
    """
    out = []
    left = tokens
    for s in segments:
        if left <= 0:
            break
        out.append(s if s.tokens <= left else Segment(s.key, left))
        left -= s.tokens
    return tuple(out)


def cap_call(prompt: Sequence[Segment], output: int, max_tokens: Optional[int]) -> tuple[tuple[Segment, ...], int]:
    """Vidur's trace-replay cap: prompt + output <= ``max_tokens``, output first capped at
    ``max_tokens - 1``, then the prompt shortened from its end."""
    if max_tokens is None:
        return tuple(prompt), output
    output = min(output, max_tokens - 1)
    total = sum(s.tokens for s in prompt)
    if total + output <= max_tokens:
        return tuple(prompt), output
    return take_prefix(prompt, max_tokens - output), output


# --- timestamps -----------------------------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:(Z)|([+-])(\d{2}):?(\d{2}))?"
)

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


def parse_iso_s(text: str) -> Optional[float]:
    """Seconds (from 0001-01-01, UTC when a zone is given) of an ISO-8601 time, or ``None``."""
    ts = parse_timestamp(text)
    return None if ts is None else ts[0] + ts[1]
