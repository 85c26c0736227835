"""The paper report as one self-contained HTML file (``report.html``): each section's ours-vs-paper
table from ``report.json`` and its PNG figures embedded (data URIs), so the file opens offline and can
be sent on. Page parts from ``sim/html.py``."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from agentwatt.core.errors import InputError
from agentwatt.sim.html import page, table

MARK = {True: "✓", False: "✗", None: "–"}


def _figure(folder: Path, name: str) -> str:
    p = folder / Path(name).name          # a file name in the report folder, never a path from the JSON
    if not p.exists():
        return f'<p class="warn">figure {html.escape(p.name)} missing</p>'
    data = base64.b64encode(p.read_bytes()).decode()
    return f'<p><img alt="{html.escape(p.name)}" style="max-width:100%" src="data:image/png;base64,{data}"></p>'


def paper_report(folder: str | Path) -> str:
    folder = Path(folder)
    try:
        doc = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{folder}: no report.json: expected a folder written by agentwatt paper") from None
    except ValueError as e:
        raise InputError(f"{folder / 'report.json'}: not JSON ({e}): expected agentwatt paper's report.json") from None
    sections = []
    for s in doc.get("sections", []):
        rows = [[r["label"], r.get("ours_text") or r.get("ours"), r.get("paper_text") or r.get("paper"), r.get("ratio"),
                 MARK.get(r.get("ok")), r.get("note") or ""] for r in s.get("rows", [])]
        inner = f"<p>{html.escape(s.get('intro') or '')}</p>" + table(
            ["quantity", "ours", "paper", "ours/paper", "", "what it means"], rows)
        inner += "".join(_figure(folder, f) for f in s.get("figures", []))
        sections.append((s.get("title") or s.get("key", ""), inner))
    checked = [r for s in doc.get("sections", []) for r in s.get("rows", []) if r.get("ok") is not None]
    note = f"{sum(bool(r['ok']) for r in checked)} of {len(checked)} checked rows within target. Self-contained file."
    return page("agentwatt: the paper's numbers beside ours", sections, note=html.escape(note))
