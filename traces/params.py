"""Checks for generator parameters: each failure is one ``InputError`` line naming the agent, the
field, the value and what was expected (``agent react-hotpotqa: fewshot = -1: expected an integer >= 0``).
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from agentwatt.core.errors import InputError


def is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_real(v: object) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def require(agent: str, field: str, value: object, ok: bool, expected: str) -> None:
    if not ok:
        raise InputError(f"agent {agent}: {field} = {value!r}: expected {expected}")


def require_positive(agent: str, obj: object, names: Iterable[str]) -> None:
    for n in names:
        v = getattr(obj, n)
        require(agent, n, v, is_real(v) and v > 0, "a finite number > 0")


def require_nonnegative(agent: str, obj: object, names: Iterable[str]) -> None:
    for n in names:
        v = getattr(obj, n)
        require(agent, n, v, is_real(v) and v >= 0, "a finite number >= 0")


def require_sigma(agent: str, obj: object, names: Iterable[str]) -> None:
    for n in names:
        v = getattr(obj, n)
        require(agent, n, v, is_real(v) and 0 <= v <= 3, "a lognormal sigma in [0, 3]")


def require_prob(agent: str, obj: object, names: Iterable[str]) -> None:
    for n in names:
        v = getattr(obj, n)
        require(agent, n, v, is_real(v) and 0 <= v <= 1, "a probability in [0, 1]")


def require_int(agent: str, obj: object, name: str, low: int, high: int | None = None) -> None:
    v = getattr(obj, name)
    if high is None:
        require(agent, name, v, is_int(v) and v >= low, f"an integer >= {low}")
    else:
        require(agent, name, v, is_int(v) and low <= v <= high, f"an integer in [{low}, {high}]")


def require_name(agent: str, obj: object, names: Iterable[str], *, allow_empty: bool = False) -> None:
    for n in names:
        v = getattr(obj, n)
        ok = isinstance(v, str) and (allow_empty or v != "")
        require(agent, n, v, ok, "a tool name (text)" if allow_empty else "a non-empty tool name")
