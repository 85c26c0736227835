"""Sweeps: a grid of scenario overrides × seeds, run anywhere, collected into tables.

    --set KEY=V1,V2 … / sweep file [grid] ─► Grid ─► RunSpecs (point × seed, validated)
      ─► runner (serial or Dask) ─► ResultStore: DIR/points/<key>.json, one per finished run
      ─► DIR/sweep.parquet (one row per run) ─► DIR/sweep_summary.parquet (mean and CI over seeds)
      ─► plots (metric vs parameter, Pareto of GPUs vs latency, power vs load)

Seed i of every point is the scenario's seed + i, so points differ only in their overrides.
"""
from __future__ import annotations

import itertools
import math
import re
import time
import tomllib
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from agentwatt.core.errors import InputError
from agentwatt.core.io import atomic_write_json
from agentwatt.plan.store import ResultStore, RunSpec, write_parquet
from agentwatt.plan.uncertainty import check_confidence, summarize_sweep

FILES = {"table": "sweep.parquet", "summary": "sweep_summary.parquet", "manifest": "sweep.json"}
DEFAULT_SEEDS = 3
_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


# ------------------------------------------------------------------------------ grid input

@dataclass(frozen=True)
class Grid:
    """Parameters (dotted scenario keys) with the values to sweep, and seeds per point."""

    params: dict[str, tuple[Any, ...]]
    seeds: int = DEFAULT_SEEDS
    origin: dict[str, str] = field(default_factory=dict)   # key -> the flag or file it came from

    def points(self) -> list[dict[str, Any]]:
        """The cartesian product, first parameter slowest; one empty point for an empty grid."""
        keys = list(self.params)
        return [dict(zip(keys, combo)) for combo in itertools.product(*self.params.values())]


def split_values(text: str) -> list[str]:
    """Split on commas outside quotes: ``1,"a,b",2`` → ``['1', '"a,b"', '2']``."""
    items, cur, quote = [], [], None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == ",":
            items.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    items.append("".join(cur).strip())
    return items


def parse_scalar(item: str, where: str) -> Any:
    """A TOML scalar (int, float, bool, quoted string); a bare word is taken as a string."""
    if not item:
        raise InputError(f"{where}: empty value: expected V1,V2,... with no empty items")
    try:
        value = tomllib.loads(f"v = {item}")["v"]
    except tomllib.TOMLDecodeError:
        if _BARE.match(item):
            return item
        raise InputError(f"{where}: {item!r} is not a TOML scalar: expected an integer, a float, true/false "
                         f"or a string") from None
    except (ValueError, RecursionError):   # an integer of > 4,300 digits, nesting ~1,000 deep
        raise InputError(f"{where}: a value of {len(item):,} characters is not a usable TOML scalar: expected an "
                         f"integer, a float, true/false or a string") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where}: {item!r}: expected a finite number")
    if not isinstance(value, (bool, int, float, str)):
        raise InputError(f"{where}: {item!r} is a TOML {type(value).__name__}: expected an integer, a float, "
                         f"true/false or a string")
    return value


def _check_values(key: str, values: list[Any], where: str) -> tuple[Any, ...]:
    if not _KEY.match(key):
        raise InputError(f"{where}: key {key!r}: expected a dotted scenario key such as fleet.replicas or "
                         f"workload.0.rate_per_s")
    if key == "run.seed" or key.startswith("run.seed."):
        raise InputError(f"{where}: run.seed is not swept: use --seeds N (seed i = the scenario's seed + i)")
    if not values:
        raise InputError(f"{where}: no values: expected at least one")
    seen: list[Any] = []
    for v in values:
        if any(v == s and type(v) is type(s) for s in seen):
            raise InputError(f"{where}: value {v!r} repeated: expected each value once")
        seen.append(v)
    return tuple(values)


def parse_set(arg: str, flag: str = "--set", single: bool = False) -> tuple[str, tuple[Any, ...]]:
    """``fleet.replicas=4,8,16`` → ``("fleet.replicas", (4, 8, 16))``; ``single`` allows one value."""
    where = f"{flag} {arg}"
    key, eq, rhs = arg.partition("=")
    key = key.strip()
    if not eq or not key:
        example = "fleet.replicas=8" if single else "fleet.replicas=4,8,16"
        raise InputError(f"{where}: expected KEY={'VALUE' if single else 'V1,V2,...'} (e.g. {example})")
    values = [parse_scalar(item, where) for item in split_values(rhs)]
    if single and len(values) != 1:
        raise InputError(f"{where}: expected one value")
    return key, _check_values(key, values, where)


def load_grid_file(path: str | Path) -> tuple[dict[str, tuple[Any, ...]], int | None]:
    """A sweep file: ``seeds = 5`` (optional) and ``[grid]`` with ``"fleet.replicas" = [4, 8]``
    (bare dotted keys such as ``fleet.replicas = [4, 8]`` work too)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: file not found: expected a sweep TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: invalid TOML: {e}") from None
    except (ValueError, RecursionError) as e:   # a number of > 4,300 digits; arrays nested ~1,000 deep
        raise InputError(f"{p}: invalid TOML ({str(e).splitlines()[0][:80]})") from None
    for k in data:
        if k not in ("grid", "seeds"):
            raise InputError(f"{p}: unknown key {k!r}: expected grid, seeds")
    seeds = data.get("seeds")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise InputError(f"{p}: seeds = {seeds!r}: expected an integer >= 1")
    grid = data.get("grid", {})
    if not isinstance(grid, dict):
        raise InputError(f"{p}: grid: expected a table [grid]")
    params = {}
    for key, values in _leaves(grid):
        where = f"{p}: [grid] {key}"
        if not isinstance(values, list):
            raise InputError(f"{where} = {values!r}: expected an array of values, e.g. [4, 8, 16]")
        for v in values:
            if not isinstance(v, (bool, int, float, str)) or (isinstance(v, float) and not math.isfinite(v)):
                raise InputError(f"{where}: value {v!r}: expected finite numbers, true/false or strings")
        params[key] = _check_values(key, values, where)
    return params, seeds


def _leaves(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def grid_from_dict(params: dict[str, Any], seeds: int = DEFAULT_SEEDS) -> Grid:
    """The grid of a Python dict ``{"fleet.replicas": [1, 2, 4], ...}`` (a scalar is one value)."""
    if not isinstance(params, dict):
        raise InputError(f"grid = {params!r}: expected a dict of dotted scenario key -> list of values")
    out: dict[str, tuple] = {}
    for key, values in params.items():
        where = f"grid[{key!r}]"
        values = list(values) if isinstance(values, (list, tuple, range)) else [values]
        for v in values:
            if not isinstance(v, (bool, int, float, str)) or (isinstance(v, float) and not math.isfinite(v)):
                raise InputError(f"{where}: value {v!r}: expected finite numbers, true/false or strings")
        out[str(key)] = _check_values(str(key), values, where)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise InputError(f"seeds = {seeds!r}: expected an integer >= 1")
    return Grid(params=out, seeds=seeds, origin={k: f"grid[{k!r}]" for k in out})


def build_grid(sets: tuple[str, ...] | list[str] = (), grid_file: str | Path | None = None,
               seeds: int | None = None) -> Grid:
    """The grid from a sweep file and ``--set`` flags (a ``--set`` replaces the file's key)."""
    params: dict[str, tuple] = {}
    origin: dict[str, str] = {}
    file_seeds = None
    if grid_file is not None:
        params, file_seeds = load_grid_file(grid_file)
        origin = {k: f"{grid_file}: [grid] {k}" for k in params}
    seen_set: set[str] = set()
    for arg in sets:
        key, values = parse_set(arg)
        if key in seen_set:
            raise InputError(f"--set {arg}: {key} given twice: expected one --set per key")
        seen_set.add(key)
        params[key], origin[key] = values, f"--set {key}"
    n = seeds if seeds is not None else (file_seeds if file_seeds is not None else DEFAULT_SEEDS)
    if n < 1:
        raise InputError(f"--seeds {n}: expected an integer >= 1")
    return Grid(params=params, seeds=n, origin=origin)


# ------------------------------------------------------------------------------ runs

def resolve_scenario(scenario: str | Path | None) -> str | None:
    return None if scenario is None else str(Path(scenario).resolve())


def base_seed(scenario: str | None) -> int:
    from agentwatt.sim.scenario import load_scenario
    return load_scenario(scenario).run.seed


def check_points(scenario: str | None, grid: Grid) -> None:
    """Validate every override before anything runs; errors name the flag (or file) of the value."""
    from agentwatt.sim.scenario import load_scenario
    for key, values in grid.params.items():
        for v in values:
            try:
                load_scenario(scenario, {key: v})
            except InputError as e:
                raise InputError(f"{grid.origin.get(key, key)}={v!r}: {e}") from None
    if len(grid.params) > 1:
        for point in grid.points():
            try:
                load_scenario(scenario, point)
            except InputError as e:
                raise InputError(f"point {point}: {e}") from None


def run_specs(scenario: str | None, grid: Grid) -> list[RunSpec]:
    """Every point × seed of ``grid`` as plain-data runs (validated first)."""
    from agentwatt.plan.runners import inputs_sha256, scenario_sha256
    check_points(scenario, grid)
    sha, seed0 = scenario_sha256(scenario), base_seed(scenario)
    return [RunSpec(scenario=scenario, scenario_sha256=sha, params=point, seed=seed0 + i, inputs_sha256=inputs)
            for point in grid.points() for inputs in (inputs_sha256(scenario, point),) for i in range(grid.seeds)]


OnRun = Callable[[RunSpec, int], None]


def execute(specs: list[RunSpec], store: ResultStore, runner, progress: bool = False,
            on_run: OnRun | None = None, desc: str = "sweep") -> int:
    """Run the specs not yet in ``store``, storing each as it finishes; returns how many ran.
    ``on_run(spec, n_done)`` is called after each one is stored (tests interrupt from it)."""
    from tqdm import tqdm
    todo = [s for s in {s.key: s for s in specs}.values() if not store.has(s)]
    ran = 0
    total = len({s.key for s in specs})
    with tqdm(total=total, initial=total - len(todo), unit="run", desc=desc, disable=not progress,
              leave=False) as bar, closing(runner.run(todo)) as results:
        for spec, summary in results:
            store.put(spec, summary)
            ran += 1
            bar.update(1)
            if on_run is not None:
                on_run(spec, ran)
    return ran


# ------------------------------------------------------------------------------ the sweep

@dataclass
class SweepResult:
    table: pd.DataFrame           # one row per point × seed
    summary: pd.DataFrame         # one row per point × metric: n, mean, std, ci_low, ci_high
    files: dict[str, Path]
    runs_total: int
    runs_done_now: int
    wall_s: float


def sweep(scenario: str | Path | None, grid: Grid, out_dir: str | Path, runner=None, *,
          confidence: float = 0.95, progress: bool = False, plots: bool = True,
          metric: str = "session_e2e_s.p99", on_run: OnRun | None = None) -> SweepResult:
    """Run every point × seed of ``grid`` not already in ``out_dir`` and rebuild the tables.

    Interrupted (Ctrl-C, a failed run), finished runs stay stored and the tables list them; the
    exception is re-raised. ``runner`` defaults to in-process serial runs.
    """
    from agentwatt.plan.runners import SerialRunner
    check_confidence(confidence)
    t0 = time.perf_counter()
    scenario = resolve_scenario(scenario)
    specs = run_specs(scenario, grid)
    store = ResultStore(out_dir)
    try:
        ran = execute(specs, store, runner if runner is not None else SerialRunner(), progress, on_run)
    except BaseException:
        _write_tables(store, specs, grid, scenario, confidence, complete=False)
        raise
    table, summary, files = _write_tables(store, specs, grid, scenario, confidence, complete=True)
    if plots:
        from agentwatt.plan.plots import sweep_plots
        files.update(sweep_plots(summary, Path(out_dir), metric))
    return SweepResult(table=table, summary=summary, files=files, runs_total=len(specs), runs_done_now=ran,
                       wall_s=time.perf_counter() - t0)


def _write_tables(store: ResultStore, specs: list[RunSpec], grid: Grid, scenario: str | None,
                  confidence: float, complete: bool):
    out = store.root
    table = store.table(specs)
    summary = summarize_sweep(table, confidence)
    files = {"table": write_parquet(table, out / FILES["table"]),
             "summary": write_parquet(summary, out / FILES["summary"])}
    manifest = {"scenario": scenario or "built-in default", "scenario_sha256": specs[0].scenario_sha256,
                "grid": {k: list(v) for k, v in grid.params.items()}, "seeds": grid.seeds,
                "seed_values": sorted({s.seed for s in specs}), "confidence": confidence,
                "points": len(grid.points()), "runs": len(specs), "runs_finished": len(table),
                "complete": complete and len(table) == len(specs)}
    files["manifest"] = atomic_write_json(out / FILES["manifest"], manifest)
    return table, summary, files
