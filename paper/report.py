"""Assemble the paper-reproduction report: run every section, write report.md, report.json, PNGs."""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Callable

from agentwatt.core.io import atomic_write_json, atomic_write_text
from agentwatt.paper import caching, energy, load, scaling, single
from agentwatt.paper.rows import Row, Section, rows_table
from agentwatt.paper.runs import Lab
from agentwatt.paper.settings import FAST, FULL, Settings

FILES = {"markdown": "report.md", "json": "report.json"}


def build_report(out_dir: str | Path, fast: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Simulate the paper's setups and write the report into ``out_dir``; returns the JSON document."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    st = FAST if fast else FULL
    lab = Lab(seed=st.seed)
    say = log or (lambda _msg: None)
    t0 = time.perf_counter()
    sections: list[Section] = []

    def step(name: str, fn: Callable[[], Section]) -> None:
        t = time.perf_counter()
        sections.append(fn())
        say(f"{name}: {time.perf_counter() - t:.1f} s")

    stats: dict = {}

    def fig4() -> Section:
        stats.update(single.design_point_stats(lab, st))
        return single.fig4_section(stats, out)

    step("Fig. 4", fig4)
    step("Figs. 5-7", lambda: single.fig5_7_section(lab, st, stats, out))
    step("Figs. 9, 12", lambda: caching.section(lab, st, out))
    step("Fig. 11", lambda: load.section(lab, st, out))
    step("Figs. 14, 16", lambda: scaling.section(lab, st, out))
    t3: dict = {}

    def table3() -> Section:
        t3.update(energy.table3(lab, st))
        return energy.table3_section(t3, out)

    step("Table III", table3)
    step("Table IV", lambda: energy.table4_section(lab, st, t3, out))
    wall = time.perf_counter() - t0
    doc = _document(sections, st, lab, wall)
    atomic_write_text(out / FILES["markdown"], render_markdown(sections, st, lab, wall))
    atomic_write_json(out / FILES["json"], doc)
    return doc


def main_rows(sections: list[Section]) -> list[Row]:
    return [r for s in sections for r in s.rows if r.main]


def render_markdown(sections: list[Section], st: Settings, lab: Lab, wall_s: float) -> str:
    rows = [r for s in sections for r in s.rows]
    checked = [r for r in rows if r.ok is not None]
    passed = sum(1 for r in checked if r.ok)
    parts = [
        "# agentwatt vs \"The Cost of Dynamic Reasoning\" (Kim et al., HPCA 2026)",
        "",
        "Every **ours** number below comes from simulating the paper's setups with agentwatt's bundled "
        "profiles (Llama-3.1-8B on one A100-40GB; Llama-3.1-70B on eight, TP8) and its agent generators. "
        "The **paper** column is the paper's value (each row's source in `docs/paper.md` is in "
        "`report.json`; rows resting on a secondary visual reading of a figure say so). **ours/paper** is the ratio; **target** is the tolerance the row is checked against "
        "(the issue's targets: Table III ±25 %, Fig. 4 ±15 %, peak QPS ±20 %; ±25 % for the other rows); "
        "✓ = within it, ✗ = a miss, *fit* = matched by construction (not a check), – = nothing to check.",
        "",
        f"Run: {'`--fast` (few sessions: noisy, for tests)' if st.fast else 'full'}; {len(lab.runs)} simulations, "
        f"wall time {wall_s:.0f} s (simulation {lab.sim_wall_s:.0f} s), seed {st.seed}, Python "
        f"{platform.python_version()}. Rows checked: {passed} of {len(checked)} within target.",
        "",
        "## Main results",
        "",
        rows_table(main_rows(sections)),
        "",
    ]
    misses = [r for r in rows if r.ok is False]
    if misses:
        unknown = "No single cause identified" + (" (`--fast`: few sessions, expect noise)" if st.fast else "")
        parts += ["### The misses, and what we know about them", ""]
        parts += [f"- **{r.label}**: ours {r.cells()[1]}, paper {r.cells()[2]}. {_sentence(r.why or unknown)}"
                  for r in misses] + [""]
    for s in sections:
        parts += [f"## {s.title}", "", s.intro, "", rows_table(s.rows), ""]
        if s.extra_md:
            parts += [s.extra_md, ""]
        parts += [f"![{name}]({name})" for name in s.figures] + [""]
    return "\n".join(parts)


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _document(sections: list[Section], st: Settings, lab: Lab, wall_s: float) -> dict[str, Any]:
    from agentwatt.sim.report import json_clean
    return json_clean({
        "settings": {k: v for k, v in vars(st).items()},
        "wall_time_s": wall_s, "simulations": len(lab.runs), "simulation_wall_s": lab.sim_wall_s,
        "main": [r.as_dict() for r in main_rows(sections)],
        "sections": [{"key": s.key, "title": s.title, "intro": s.intro, "rows": [r.as_dict() for r in s.rows],
                      "figures": s.figures, "data": s.data} for s in sections],
    })
