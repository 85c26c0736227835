"""Write a run's results into a folder, whole: the files go into a staging folder that replaces the
result folder only once all are written (``core/io.py`` ``result_folder``), so a folder never mixes
two runs (nor keeps a previous run's PNGs or power table that this run did not write). File names
are fixed here, never taken from input files, so nothing in a scenario or trace can steer where
output lands; a folder holding any other file is not replaced (an error before the run)."""
from __future__ import annotations

import json
from pathlib import Path

from agentwatt.core.io import atomic_write, atomic_write_json, check_out_folder, result_folder

FILES = {"summary": "summary.json", "calls": "calls.parquet", "sessions": "sessions.parquet",
         "power": "power.parquet", "power_levels": "power_levels.parquet", "latency_ccdf": "latency_ccdf.png", "power_png": "power.png",
         "steps": "steps.csv", "vllm_benchmark": "vllm_benchmark.json", "scaling": "scaling.parquet",
         "replica_states": "replica_states.parquet", "transfers": "kv_transfers.parquet"}
# what a previous run may have left in a folder that is replaced: these files, the CLI's report.html
# (written into the folder after it), and latency_cdf.png of earlier versions
RESULT_FILES = frozenset(FILES.values()) | {"report.html", "latency_cdf.png"}


def check_results_folder(out_dir: str | Path) -> Path:
    """Fail before a run, not after it, when its results could not be written to ``out_dir``."""
    return check_out_folder(out_dir, RESULT_FILES)


def _provenance(summary: dict) -> bytes:
    """What every table of a run carries in its Parquet metadata (key ``agentwatt``): the scenario,
    its seed and the package versions, as in ``summary.json`` (no wall-clock fields)."""
    return json.dumps({"scenario": summary.get("scenario"), "scenario_source": summary.get("scenario_source"),
                       "seed": summary.get("seed"), "versions": summary.get("versions")},
                      sort_keys=True, default=str).encode()


def _parquet(df, path: Path, provenance: bytes | None = None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.Table.from_pandas(df, preserve_index=False)
    if provenance is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"agentwatt": provenance})
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_results(results, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write the files of ``results`` as folder ``out_dir`` (replacing a previous results folder
    there whole); returns the final paths."""
    with result_folder(out_dir, RESULT_FILES) as stage:
        written = _write_files(results, stage, plots)
    return {k: Path(out_dir) / p.name for k, p in written.items()}


def _write_files(results, out: Path, plots: bool) -> dict[str, Path]:
    from agentwatt.sim import plots as P
    written = {}
    prov = _provenance(results.summary)
    _parquet(results.calls, out / FILES["calls"], prov)
    written["calls"] = out / FILES["calls"]
    _parquet(results.sessions, out / FILES["sessions"], prov)
    written["sessions"] = out / FILES["sessions"]
    if results.power is not None:
        _parquet(results.power, out / FILES["power"], prov)
        written["power"] = out / FILES["power"]
    if getattr(results, "power_levels", None) is not None:
        _parquet(results.power_levels, out / FILES["power_levels"], prov)
        written["power_levels"] = out / FILES["power_levels"]
    if getattr(results, "steps", None) is not None:   # [run] step_trace: the format of core/steptrace.py
        from agentwatt.core.steptrace import write_step_trace
        df = results.steps
        rows = zip(*(df[c].tolist() for c in df.columns))
        rows = ((*r[:6], None if r[6] != r[6] else r[6], *r[7:]) for r in rows)   # NaN energy: an empty cell
        write_step_trace(out / FILES["steps"], rows, extra_columns=list(df.columns[7:]),
                         comment=f"agentwatt step trace of scenario {results.summary.get('scenario')!r}, seed "
                                 f"{results.summary.get('seed')}: one row per engine step, all replicas")
        written["steps"] = out / FILES["steps"]
    for key in ("scaling", "replica_states", "transfers"):   # [autoscale] / [disaggregation] tables
        df = getattr(results, key, None)
        if df is not None:
            _parquet(df, out / FILES[key], prov)
            written[key] = out / FILES[key]
    if plots:
        written["latency_ccdf"] = P.latency_ccdf(results.calls, results.sessions, out / FILES["latency_ccdf"],
                                                 results.summary)
        if results.power is not None:
            written["power_png"] = P.power_over_time(results.power, out / FILES["power_png"], summary=results.summary)
    from agentwatt.sim.report import vllm_benchmark
    written["vllm_benchmark"] = atomic_write_json(out / FILES["vllm_benchmark"],
                                                  vllm_benchmark(results.calls, results.summary))
    atomic_write_json(out / FILES["summary"], results.summary)
    written["summary"] = out / FILES["summary"]
    return written
