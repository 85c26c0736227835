"""One comparison row (ours beside the paper's value), its check, and how it prints.

A row's check is one of:

* ``rel``: |ours / paper − 1| ≤ ``tol`` (the usual "within ±x %");
* ``max`` / ``min``: ours ≤ paper (an axis bound) / ours ≥ paper;
* ``equal``: the printed forms are identical (Table IV's formula cells);
* ``claim``: a qualitative statement of the paper, judged by ``claim_ok`` (computed by the section);
* ``fit``: ours was matched to the paper's value by construction (no check; shown as "fit");
* ``info``: no paper number to compare with (shown as "–").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from agentwatt.paper.values import PAPER

MARK = {True: "✓", False: "✗", None: "–"}


@dataclass
class Row:
    label: str
    ours: float | None
    paper_key: str | None = None
    unit: str = ""
    tol: float | None = None
    check: str = "rel"
    note: str = ""
    main: bool = False
    paper_text: str | None = None    # shown when the paper gives no number (or to print it its own way)
    ours_text: str | None = None
    claim_ok: bool | None = None
    why: str = ""                    # what we know about a miss (printed in the report's list of misses)

    @property
    def paper(self) -> float | None:
        return PAPER[self.paper_key].value if self.paper_key else None

    @property
    def source(self) -> str:
        return PAPER[self.paper_key].source if self.paper_key else ""

    @property
    def ratio(self) -> float | None:
        p, o = self.paper, self.ours
        if p is None or o is None or p == 0 or not math.isfinite(o):
            return None
        return o / p

    @property
    def ok(self) -> bool | None:
        if self.check in ("info", "fit"):
            return None
        if self.check == "claim":
            return self.claim_ok
        if self.check == "equal":
            return self.ours_text is not None and self.ours_text == self.paper_text
        o, p = self.ours, self.paper
        if o is None or p is None or not math.isfinite(o):
            return False if p is not None else None
        if self.check == "max":
            return o <= p
        if self.check == "min":
            return o >= p
        return abs(o / p - 1.0) <= (self.tol or 0.0)

    @property
    def target(self) -> str:
        if self.check == "rel" and self.tol is not None and self.paper is not None:
            return f"±{self.tol:.0%}"
        return {"max": "≤ paper", "min": "≥ paper", "equal": "same print", "claim": "claim", "fit": "", "info": ""}.get(self.check, "")

    def cells(self) -> list[str]:
        ours = self.ours_text if self.ours_text is not None else fmt(self.ours, self.unit)
        paper = self.paper_text if self.paper_text is not None else fmt(self.paper, self.unit)
        ratio = "" if self.ratio is None or self.check == "equal" else f"{self.ratio:.2f}"
        mark = "fit" if self.check == "fit" else MARK[self.ok]
        return [self.label, ours, paper, ratio, self.target, mark, self.note]

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "ours": _finite(self.ours), "paper": self.paper, "paper_key": self.paper_key,
                "paper_source": self.source, "unit": self.unit, "ratio": _finite(self.ratio), "check": self.check,
                "tolerance": self.tol, "ok": self.ok, "note": self.note, "why": self.why, "ours_text": self.ours_text,
                "paper_text": self.paper_text}


@dataclass
class Section:
    key: str
    title: str
    intro: str
    rows: list[Row] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)     # PNG file names in the report folder
    extra_md: str = ""                                   # tables that are not ours-vs-paper rows
    data: dict[str, Any] = field(default_factory=dict)  # what the JSON report keeps besides the rows


HEADER = ["quantity", "ours", "paper", "ours/paper", "target", "", "what it means"]


def md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(c: str) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def rows_table(rows: list[Row]) -> str:
    return md_table(HEADER, [r.cells() for r in rows])


def fmt(v: float | None, unit: str = "") -> str:
    """A number as the report prints it, with its unit."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if unit == "share":
        return f"{100 * v:.1f} %"
    if unit == "W":
        return fmt_power(v)
    if unit in ("x",):
        return f"{v:.2f}×"
    if unit == "calls":
        return f"{v:.1f} calls"
    if unit == "pp":
        return f"{v:+.1f} pp"
    digits = 3 if abs(v) < 100 else 4
    text = f"{v:.{digits}g}" if abs(v) < 1e6 else f"{v:.3e}"
    return f"{text} {unit}".strip()


def fmt_power(w: float) -> str:
    """Watts as Table IV prints them: one decimal, in MW below 1,000 MW, else GW."""
    mw = w / 1e6
    if round(mw, 1) < 1000.0:
        return f"{mw:.1f} MW"
    return f"{mw / 1e3:.1f} GW"


def _finite(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.6g}")
