"""Options shared by the commands, so the same thing has the same flag everywhere:

* ``--out``       where results go (a folder for commands that write several files);
* ``--no-plots``  skip the PNG plots;
* ``--no-report`` skip the interactive HTML report (``report.html``);
* ``--set KEY=VALUE``  a scenario override by dotted key (``fleet.replicas=4``,
  ``workload.1.rate_per_s=2``), value a TOML scalar, repeatable (``sweep`` takes ``V1,V2,...``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def out_option(default: Path | None, help: str):
    return click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=default,
                        show_default=default is not None, help=help)


# the bound of a scenario's [run] seed (sim/scenario.py): a 64-bit signed integer
SEED_RANGE = click.IntRange(0, 2**63 - 1)


def finite_float(ctx, param, value):
    """A click callback: reject ``inf`` and ``nan``, which click's FloatRange lets through."""
    import math
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value}: expected a finite number")
    return value


def no_plots_option(fn):
    return click.option("--no-plots", "no_plots", is_flag=True, help="Skip the PNG plots.")(fn)


def no_report_option(fn):
    return click.option("--no-report", "no_report", is_flag=True,
                        help="Skip report.html (the interactive, self-contained HTML report).")(fn)


def write_html_report(folder: Path) -> Path:
    """``report.html`` of a folder written by simulate, sweep, plan or paper."""
    from agentwatt.sim.html import write_report
    if (Path(folder) / "report.json").exists() and not (Path(folder) / "summary.json").exists():
        from agentwatt.paper.html import paper_report
        return write_report(folder, paper_report(folder))
    from agentwatt.plan.html import report_for
    return write_report(folder, report_for(folder))


def set_option(fn):
    return click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                        help="Scenario override by dotted key, value a TOML scalar (e.g. fleet.replicas=4, "
                             "workload.1.rate_per_s=2); repeatable.")(fn)


def parse_sets(sets: tuple[str, ...] | list[str], seed_flag: str = "--seed") -> dict[str, Any]:
    """``("fleet.replicas=4", ...)`` → ``{"fleet.replicas": 4, ...}``; errors name the flag."""
    from agentwatt.core.errors import InputError
    from agentwatt.plan.sweep import parse_set
    out: dict[str, Any] = {}
    for s in sets:
        if s.partition("=")[0].strip() == "run.seed" and seed_flag != "--seeds":
            raise InputError(f"--set {s}: the seed has its own flag: expected {seed_flag} N")
        key, values = parse_set(s, single=True)
        if key in out:
            raise InputError(f"--set {s}: {key} given twice: expected one --set per key")
        out[key] = values[0]
    return out


def load_with_sets(scenario: Path | None, sets: tuple[str, ...], seed_flag: str = "--seed"):
    """The scenario file (the built-in default when None) with the ``--set`` overrides applied."""
    from agentwatt.core.errors import InputError
    from agentwatt.sim.scenario import load_scenario
    overrides = parse_sets(sets, seed_flag)
    try:
        return load_scenario(scenario, overrides or None)
    except InputError as e:
        if not overrides:
            raise
        raise InputError(f"--set {', '.join(sets)}: {e}") from None
