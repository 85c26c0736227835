"""``agentwatt paper``: the paper-reproduction report (attached to the CLI in cli/main.py)."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("paper")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("paper-report"),
              show_default=True, help="Folder for report.md, report.json and the PNG figures.")
@click.option("--fast", is_flag=True, help="Few sessions per setup (seconds, noisy numbers): for tests.")
@click.option("--no-report", "no_report", is_flag=True, help="Skip report.html (the self-contained HTML report).")
def paper_cmd(out_dir: Path, fast: bool, no_report: bool) -> None:
    """Simulate the paper's setups and write a report beside the paper's numbers."""
    from agentwatt.paper import build_report
    from agentwatt.paper.rows import MARK
    doc = build_report(out_dir, fast=fast, log=lambda m: click.echo(f"  {m}", err=True))
    checked = [r for s in doc["sections"] for r in s["rows"] if r["ok"] is not None]
    click.echo(f"{sum(r['ok'] for r in checked)} of {len(checked)} checked rows within target "
               f"({doc['wall_time_s']:.0f} s)")
    for r in doc["main"]:
        if r["ok"] is False:
            click.echo(f"  {MARK[False]} {r['label']}: ours {r['ours_text'] or r['ours']}, paper {r['paper_text'] or r['paper']}")
    if not no_report:
        from agentwatt.paper.html import paper_report
        from agentwatt.sim.html import write_report
        write_report(out_dir, paper_report(out_dir))
    click.echo(f"wrote {out_dir}/report.md, report.json" + ("" if no_report else ", report.html") + " and figures")
