"""The step-trace format: one CSV row per engine step, what ``agentwatt calibrate fit-trace`` fits a
profile to. The simulator (``[run] step_trace = true``), the ``calibrate check`` serving loop and any
real engine write it; README "Calibrate from a step trace" says how to write it from vLLM.

::

    start_s,duration_s,prefill_tokens,prefill_attn,decode_seqs,decode_ctx,energy_j
    0.0,0.0231,512,262144,0,0,
    0.0231,0.0107,0,0,3,1547,5.12

Columns (the names of ``core/step.py``; a header line names them, in any order):

* ``start_s``: when the step began, seconds from any origin (used to order the rows in time);
* ``duration_s``: how long the step took, seconds (> 0): from scheduling it to the next step being
  able to start, i.e. what the simulator's step time stands for;
* ``prefill_tokens`` (P): prompt tokens computed in the step, all prefill chunks;
* ``prefill_attn`` (A): the sum over those chunks of ``chunk × (cached_before + chunk)``, where
  ``cached_before`` is the request's tokens already in the KV cache when the chunk starts;
* ``decode_seqs`` (D): sequences that decoded one token in the step;
* ``decode_ctx`` (C): the sum of the context lengths (KV tokens read) of those sequences;
* ``energy_j``: joules the replica drew during the step, all its GPUs together; optional: the column
  may be absent, or a cell empty where the step was not metered.

Lines starting with ``#`` are comments (before or after the header); other columns (e.g. the
simulator's ``replica``) are ignored. Each bad cell is a one-line ``InputError`` naming
``file:line:column``, the column's name and what was expected.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from agentwatt.core.errors import InputError

COLUMNS = ("start_s", "duration_s", "prefill_tokens", "prefill_attn", "decode_seqs", "decode_ctx", "energy_j")
REQUIRED = COLUMNS[:-1]
# what each column must hold: (integer?, lower bound, bound open?)
_RULES = {"start_s": (False, 0.0, False), "duration_s": (False, 0.0, True), "prefill_tokens": (True, 0.0, False),
          "prefill_attn": (True, 0.0, False), "decode_seqs": (True, 0.0, False), "decode_ctx": (True, 0.0, False),
          "energy_j": (False, 0.0, False)}

Row = tuple[float, float, int, int, int, int, "float | None"]


@dataclass(frozen=True)
class StepTrace:
    """The rows of one trace file, in file order (``rows``: tuples in ``COLUMNS`` order, energy
    ``None`` where unmeasured)."""

    path: str
    rows: tuple[Row, ...]
    has_energy_column: bool

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def energy_rows(self) -> int:
        return sum(r[6] is not None for r in self.rows)


def _expected(name: str) -> str:
    integer, lo, lo_open = _RULES[name]
    what = "an integer" if integer else "a number"
    return f"{what} {'>' if lo_open else '>='} {lo:g}"


def _cell(raw: str, name: str, where: str) -> float | int | None:
    s = raw.strip()
    if name == "energy_j" and s == "":
        return None
    integer, lo, lo_open = _RULES[name]
    try:
        v: float | int = float(s)
    except ValueError:
        raise InputError(f"{where}: {name} = {raw!r}: expected {_expected(name)}") from None
    if not math.isfinite(v) or (v <= lo if lo_open else v < lo):
        raise InputError(f"{where}: {name} = {raw!r}: expected {_expected(name)}")
    if integer:
        if v != int(v):
            raise InputError(f"{where}: {name} = {raw!r}: expected {_expected(name)}")
        v = int(v)
    return v


def read_step_trace(path: str | Path) -> StepTrace:
    """Load and validate a step-trace CSV (see the module docstring)."""
    p = Path(path)
    name = str(path)
    if not p.is_file():
        raise InputError(f"{name}: step trace not found: expected a CSV file with the header "
                         f"{','.join(COLUMNS)}")
    rows: list[Row] = []
    try:
        with p.open(encoding="utf-8", newline="") as f:
            header: list[str] | None = None
            index: dict[str, int] = {}
            for lineno, fields in enumerate(csv.reader(f), start=1):
                if not fields or all(not x.strip() for x in fields) or fields[0].lstrip().startswith("#"):
                    continue
                if header is None:
                    header = [h.strip() for h in fields]
                    missing = [c for c in REQUIRED if c not in header]
                    if missing:
                        raise InputError(f"{name}:{lineno}: header lacks {', '.join(missing)}: expected a header "
                                         f"line naming {','.join(COLUMNS)} (energy_j optional)")
                    dup = sorted({h for h in header if header.count(h) > 1 and h in COLUMNS})
                    if dup:
                        raise InputError(f"{name}:{lineno}: column {dup[0]} named twice: expected each column once")
                    index = {c: header.index(c) for c in COLUMNS if c in header}
                    continue
                if len(fields) != len(header):
                    raise InputError(f"{name}:{lineno}: {len(fields)} fields: expected {len(header)} as in the "
                                     f"header ({','.join(header)})")
                vals = {c: _cell(fields[i], c, f"{name}:{lineno}:{i + 1}") for c, i in index.items()}
                P, A, D, C = vals["prefill_tokens"], vals["prefill_attn"], vals["decode_seqs"], vals["decode_ctx"]
                col = lambda c: f"{name}:{lineno}:{index[c] + 1}"  # noqa: E731
                if P + D == 0:
                    raise InputError(f"{col('prefill_tokens')}: prefill_tokens = 0 and decode_seqs = 0: expected a "
                                     f"step that computes at least one token")
                if (A == 0) != (P == 0) or A < P:
                    raise InputError(f"{col('prefill_attn')}: prefill_attn = {A} with prefill_tokens = {P}: expected "
                                     f"the sum over chunks of chunk x (cached_before + chunk), at least "
                                     f"prefill_tokens (0 when no prompt token is computed)")
                if C < D:
                    raise InputError(f"{col('decode_ctx')}: decode_ctx = {C} with decode_seqs = {D}: expected the sum "
                                     f"of the decoding sequences' context lengths, at least 1 each")
                rows.append((float(vals["start_s"]), float(vals["duration_s"]), P, A, D, C, vals.get("energy_j")))
    except UnicodeDecodeError as e:
        raise InputError(f"{name}: not UTF-8 text (byte {e.start}): expected a step-trace CSV") from None
    except csv.Error as e:
        raise InputError(f"{name}: not a CSV file ({e}): expected a step-trace CSV") from None
    except OSError as e:
        raise InputError(f"{name}: cannot read step trace: {e.strerror}") from None
    if header is None:
        raise InputError(f"{name}: empty file: expected a header line {','.join(COLUMNS)} and one row per step")
    if not rows:
        raise InputError(f"{name}: no step rows after the header: expected one row per engine step")
    return StepTrace(path=name, rows=tuple(rows), has_energy_column="energy_j" in header)


def format_row(row: Sequence) -> str:
    """One CSV line (no newline) of a row in ``COLUMNS`` order (energy ``None`` → empty cell), then any
    extra cells; floats written in their shortest exact form."""
    out = []
    for v in row:
        if v is None:
            out.append("")
        elif isinstance(v, float):
            out.append(repr(v))
        else:
            out.append(str(v))
    return ",".join(out)


def write_step_trace(path: str | Path, rows: Iterable[Sequence], extra_columns: Sequence[str] = (),
                     comment: str | None = None) -> Path:
    """Write rows (``COLUMNS`` order, then one cell per ``extra_columns``) atomically."""
    from agentwatt.core.io import atomic_write_text
    lines = [f"# {line}" for line in (comment or "").splitlines()]
    lines.append(",".join((*COLUMNS, *extra_columns)))
    lines.extend(format_row(r) for r in rows)
    return atomic_write_text(path, "\n".join(lines) + "\n")
