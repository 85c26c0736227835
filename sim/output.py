"""Write a run's results into a folder, every file atomically. File names are fixed here, never
taken from input files, so nothing in a scenario or trace can steer where output lands."""
from __future__ import annotations

from pathlib import Path

from agentwatt.io import atomic_write, atomic_write_json

FILES = {"summary": "summary.json", "calls": "calls.parquet", "sessions": "sessions.parquet",
         "power": "power.parquet", "power_levels": "power_levels.parquet", "latency_cdf": "latency_cdf.png", "power_png": "power.png"}


def _parquet(df, path: Path) -> None:
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False, engine="pyarrow"))


def write_results(results, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    from agentwatt.sim import plots as P
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    _parquet(results.calls, out / FILES["calls"])
    written["calls"] = out / FILES["calls"]
    _parquet(results.sessions, out / FILES["sessions"])
    written["sessions"] = out / FILES["sessions"]
    if results.power is not None:
        _parquet(results.power, out / FILES["power"])
        written["power"] = out / FILES["power"]
    if getattr(results, "power_levels", None) is not None:
        _parquet(results.power_levels, out / FILES["power_levels"])
        written["power_levels"] = out / FILES["power_levels"]
    if plots:
        written["latency_cdf"] = P.latency_cdf(results.calls, results.sessions, out / FILES["latency_cdf"])
        if results.power is not None:
            written["power_png"] = P.power_over_time(results.power, out / FILES["power_png"])
    atomic_write_json(out / FILES["summary"], results.summary)
    written["summary"] = out / FILES["summary"]
    return written
