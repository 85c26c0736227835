"""``agentwatt calibrate``: the click command (attached to the main group in ``agentwatt/cli.py``).

Errors are ``AgentwattError``s with one-line messages; the main group prints and exits on them.
"""
from __future__ import annotations

from pathlib import Path

import click

from agentwatt.calibrate.models import PRESETS
from agentwatt.calibrate.profile import FitStats, Profile


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _fit_line(what: str, fit: FitStats | None) -> str:
    if fit is None:
        return f"{what} fit: no statistics"
    line = f"{what} fit: MAPE {_pct(fit.mape)} (max {_pct(fit.max_ape)}) on {fit.n_points} points"
    if fit.holdout_n_points:
        line += (f"; holdout MAPE {_pct(fit.holdout_mape)} (max {_pct(fit.holdout_max_ape)}) "
                 f"on {fit.holdout_n_points} points")
    return line


def summarize(profile: Profile, path: Path | None) -> str:
    """A few lines for the terminal: what was measured, how well it fits, power, where it went."""
    prov, hw = profile.provenance, profile.hardware
    threads = prov.get("threads")
    lines = [f"calibrated {prov.get('preset')} on {hw.device_name} ({prov.get('device')}, {prov.get('dtype')}, "
             f"{threads} thread{'' if threads == 1 else 's'}): {prov.get('points_measured')} of "
             f"{prov.get('points_planned')} points in {prov.get('wall_time_s', 0):.1f} s",
             _fit_line("latency", profile.latency.fit)]
    if prov.get("truncated_by_budget"):
        lines.append(f"budget reached: stopped after {prov.get('rounds_completed')} of "
                     f"{prov.get('grid', {}).get('rounds')} rounds; "
                     f"{sum(s.get('reason') == 'time budget' for s in prov.get('skipped', []))} points never measured")
    p = profile.power
    if p.available:
        lines.append(f"power ({p.source}): idle {p.idle_w:.1f} W, prefill {p.prefill_w:.1f} W, "
                     f"decode {p.decode_base_w:.1f} W + {p.decode_log2_batch_w:.2f} W x log2(batch)")
        lines.append(_fit_line("power", p.fit))
    else:
        lines.append(f"power: unavailable ({p.reason})")
    lines.append(f"wrote {path}" if path is not None else "profile not written")
    return "\n".join(lines)


@click.command("calibrate")
@click.option("--preset", required=True, metavar="NAME", help=f"Model shape: {', '.join(PRESETS)}.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Profile JSON file to write (atomically).")
@click.option("--budget-minutes", type=float, default=None, help="Stop adding sweep points after this long.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds weights, inputs and point order.")
@click.option("--threads", type=int, default=None,
              help="torch threads (default 1 on CPU: steadier on a shared machine).")
@click.option("--progress/--no-progress", default=True, help="Progress bar (only on a terminal).")
def calibrate_cmd(preset: str, device: str, out: Path, budget_minutes: float | None, seed: int,
                  threads: int | None, progress: bool) -> None:
    """Measure prefill/decode latency (and energy, where a meter exists) and fit a profile."""
    from agentwatt.calibrate.run import calibrate

    profile = calibrate(preset, device, out, budget_minutes=budget_minutes, seed=seed, progress=progress,
                        threads=threads)
    click.echo(summarize(profile, out))
