"""The Python API for notebooks and scripts, re-exported by the root package ``agentwatt``.

    import agentwatt
    sc = agentwatt.load_scenario(fleet__replicas=4)            # built-in default, 4 replicas
    res = agentwatt.run(sc, seed=7)                             # Results: summary, calls, sessions, power
    sw = agentwatt.sweep(sc, {"fleet.replicas": [2, 4]}, seeds=2)   # tables, no folder needed
    pl = agentwatt.plan(sc, slo=["session_e2e_s.p99<=40"], hi=8)    # smallest fleet meeting the SLO

Each function takes a scenario as a ``Scenario`` (from ``load_scenario``), a dict shaped like the
TOML file, a path to a TOML file, or None (the built-in default). Sweeps and plans run through the
same code as ``agentwatt sweep``/``plan`` (``plan/sweep.py``, ``plan/plan.py``): a scenario that is
not a file is written as ``scenario.toml`` into the result folder, a temporary one when ``out`` is
None, so Dask workers can read it and reruns into the same ``out`` reuse finished runs.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from agentwatt.core.errors import InputError
from agentwatt.core.profile import Profile
from agentwatt.sim.run import Results
from agentwatt.sim.scenario import Scenario, WorkloadClass
from agentwatt.traces.schema import Session

ScenarioLike = Scenario | Mapping[str, Any] | str | os.PathLike | None
SCENARIO_FILE = "scenario.toml"


# ------------------------------------------------------------------------------ scenarios

def load_scenario(source: ScenarioLike = None, overrides: Mapping[str, Any] | None = None,
                  **kw_overrides: Any) -> Scenario:
    """A validated ``Scenario`` from a TOML path, a dict shaped like the file, a ``Scenario``, or
    None (the built-in default), with dotted-key overrides applied before validation.

    Overrides come as a dict (``{"fleet.replicas": 4, "workload.1.rate_per_s": 2.0}``) or as keyword
    arguments with ``__`` for the dots (``fleet__replicas=4, workload__1__rate_per_s=2.0``).
    """
    from agentwatt.sim.scenario import apply_overrides, load_scenario as load_file, scenario_from_dict
    merged = dict(overrides or {})
    for k, v in kw_overrides.items():
        key = k.replace("__", ".")
        if key in merged:
            raise InputError(f"override {key} given twice (as {k}= and in overrides)")
        merged[key] = v
    if source is None or isinstance(source, (str, os.PathLike)):
        return load_file(source, merged or None)
    if isinstance(source, Scenario):
        if not merged:
            return source
        data, where = scenario_to_dict(source), source.source
    elif isinstance(source, Mapping):
        data, where = dict(source), "scenario dict"
    else:
        raise InputError(f"scenario = {type(source).__name__}: expected a Scenario, a dict, a TOML path or None")
    if merged:
        data = apply_overrides(data, merged, where)
    return scenario_from_dict(data, where)


def scenario_to_dict(sc: Scenario) -> dict[str, Any]:
    """The dict (TOML shape) that ``scenario_from_dict`` reads back into an equal scenario; file
    paths (a profile JSON, a trace) are made absolute."""
    from agentwatt.traces.loaders import BUNDLED_TRACES
    profile = sc.profile
    if profile.endswith(".json") or "/" in profile:
        profile = os.path.abspath(profile)
    return {
        "name": sc.name, "profile": profile,
        "run": asdict(sc.run),
        # with [disaggregation] the pools size the fleet: leave replicas out so they can be overridden
        "fleet": {k: v for k, v in asdict(sc.fleet).items() if k != "replicas" or sc.disaggregation is None},
        "engine": {k: v for k, v in asdict(sc.engine).items() if v is not None},
        "router": asdict(sc.router),
        "facility": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(sc.facility).items()
                     if v is not None},
        "workload": [_workload_dict(w, BUNDLED_TRACES) for w in sc.workload],
        **({"autoscale": {k: v for k, v in asdict(sc.autoscale).items() if v is not None}}
           if sc.autoscale is not None else {}),
        **({"disaggregation": {k: v for k, v in asdict(sc.disaggregation).items() if v is not None}}
           if sc.disaggregation is not None else {}),
    }


def _workload_dict(w: WorkloadClass, bundled) -> dict[str, Any]:
    if w.trace is not None:
        d: dict[str, Any] = {"trace": w.trace if w.trace in bundled else os.path.abspath(w.trace), "format": w.format}
        if w.limit is not None:
            d["limit"] = w.limit
        if w.retime:
            d["arrival"] = w.arrival
            if w.rate_per_s is not None:
                d["rate_per_s"] = w.rate_per_s
            if w.arrival_params:
                d["arrival_params"] = dict(w.arrival_params)
            if w.repeat:
                d["repeat"] = True
        else:
            d["time_scale"] = w.time_scale
        return d
    d = {"mix": dict(w.mix)} if w.mix else {"agent": w.agent}
    knobs = {k: dict(v) for k, v in w.mix_knobs.items() if v} if w.mix else dict(w.knobs)
    if knobs:
        d["knobs"] = knobs
    d["arrival"] = w.arrival
    if w.arrival == "closed":
        d["concurrency"] = w.concurrency
        if w.sessions is not None:
            d["sessions"] = w.sessions
        d["think_time_s"] = w.think_time_s
    else:
        if w.rate_per_s is not None:
            d["rate_per_s"] = w.rate_per_s
        if w.arrival_params:
            d["arrival_params"] = dict(w.arrival_params)
    return d


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_toml(data: Mapping[str, Any]) -> str:
    """A scenario dict as TOML text: one ``key = value`` line per top-level key, tables inline."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in data.items())


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _toml_str(k)


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise InputError(f"{v!r}: a {type(v).__name__} has no TOML form: expected numbers, strings, lists, tables")


def _as_scenario(scenario: ScenarioLike) -> Scenario:
    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


def _scenario_file(scenario: ScenarioLike, folder: Path) -> str | None:
    """A path the sweep machinery can hash and hand to workers: the file itself, or the scenario
    written as ``folder/scenario.toml``."""
    if scenario is None or isinstance(scenario, (str, os.PathLike)):
        load_scenario(scenario)   # errors now, naming the file
        return None if scenario is None else os.fspath(scenario)
    folder.mkdir(parents=True, exist_ok=True)
    from agentwatt.core.io import atomic_write
    text = to_toml(scenario_to_dict(_as_scenario(scenario)))
    path = folder / SCENARIO_FILE
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return str(path)


# ------------------------------------------------------------------------------ run

def run(scenario: ScenarioLike = None, *, profile: Profile | str | None = None,
        sessions: Iterable[Session] | None = None, seed: int | None = None, progress: bool = False) -> Results:
    """Simulate ``scenario`` (``seed`` overrides its seed; ``profile``, a ``Profile`` or a bundled
    name or path, its profile; ``sessions`` replace its workload, see ``sim.run.run``)."""
    from agentwatt.core.profile import load_profile
    from agentwatt.sim.run import run as simulate
    sc = _as_scenario(scenario)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"seed = {seed!r}: expected an integer >= 0")
        sc = sc.with_seed(seed)
    prof = load_profile(profile) if isinstance(profile, (str, os.PathLike)) else profile
    return simulate(sc, prof, sessions=sessions, progress=progress)


# ------------------------------------------------------------------------------ sweep and plan

@dataclass(repr=False)
class SweepResults:
    """``table``: one row per point × seed (``param.*`` columns, then every summary metric);
    ``summary``: one row per point × metric with n, mean, std and the confidence interval."""

    table: pd.DataFrame
    summary: pd.DataFrame
    out: Path | None                       # the result folder; None when it was temporary
    files: dict[str, Path] = field(default_factory=dict)

    def __repr__(self) -> str:
        params = [c.removeprefix("param.") for c in self.table.columns if c.startswith("param.")]
        return (f"<SweepResults: {len(self.table)} run(s) over {', '.join(params) or 'no parameters'}"
                f"{'' if self.out is None else f', in {self.out}'}>")

    def metric(self, name: str = "session_e2e_s.p99") -> pd.DataFrame:
        """One row per point: its parameters and the mean and interval of ``name`` over seeds."""
        df = self.summary[self.summary["metric"] == name]
        if df.empty:
            raise InputError(f"metric {name!r}: not in the sweep summary (try session_e2e_s.p99, ttft_s.p90, "
                             f"gpu_avg_power_w)")
        return df.reset_index(drop=True)


@dataclass(repr=False)
class PlanResults:
    """``answer``: the smallest size meeting every SLO within the power budget (None: none did,
    ``reason`` says why); ``table``: one row per evaluated size; ``result``: the full
    ``plan.plan.PlanResult``."""

    answer: int | None
    reason: str | None
    table: pd.DataFrame
    result: Any
    out: Path | None

    def __repr__(self) -> str:
        r = self.result
        slos = " and ".join(s.text for s in r.slos)
        got = f"{r.param} = {self.answer}" if self.answer is not None else f"no answer ({self.reason})"
        return f"<PlanResults {slos}: {got}; evaluated {sorted(r.evaluated)}>"


def _runner(workers: int | None):
    from agentwatt.plan.runners import SerialRunner, open_runner
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers = {workers!r}: expected an integer >= 1, or None for one per core")
    return SerialRunner() if workers == 1 else open_runner(workers=workers)


class _Folder:
    """``out`` as a Path, or a temporary folder removed on exit."""

    def __init__(self, out: str | os.PathLike | None, prefix: str):
        self.out, self.prefix, self.tmp = out, prefix, None

    def __enter__(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        self.tmp = tempfile.TemporaryDirectory(prefix=self.prefix)
        return Path(self.tmp.name)

    def __exit__(self, *exc) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()


def sweep(scenario: ScenarioLike, grid: Mapping[str, Any], seeds: int = 1, out: str | os.PathLike | None = None,
          workers: int | None = 1, *, confidence: float = 0.95, plots: bool | None = None,
          metric: str = "session_e2e_s.p99", progress: bool = False) -> SweepResults:
    """Run ``scenario`` at every point of ``grid`` (dotted key → values; the cartesian product) with
    ``seeds`` seeds each (seed i = the scenario's seed + i), as ``agentwatt sweep`` does.

    ``out``: a result folder (finished runs are kept and skipped on a rerun, tables and plots
    written); None runs in a temporary folder and returns only the tables. ``workers``: 1 runs in
    this process, N on a local Dask cluster of N processes, None one per core. ``plots`` defaults
    to True with ``out``, False without.
    """
    from agentwatt.plan.sweep import grid_from_dict, sweep as run_sweep
    g = grid_from_dict(dict(grid), seeds)
    with _Folder(out, "agentwatt-sweep-") as folder:
        path = _scenario_file(scenario, folder)
        runner = _runner(workers)
        try:
            res = run_sweep(path, g, folder, runner, confidence=confidence, progress=progress, metric=metric,
                            plots=(out is not None) if plots is None else bool(plots and out is not None))
        finally:
            runner.close()
        return SweepResults(table=res.table, summary=res.summary, out=None if out is None else folder,
                            files={} if out is None else res.files)


def plan(scenario: ScenarioLike, slo: Iterable[str] | str, param: str = "fleet.replicas", lo: int = 1, hi: int = 64,
         seeds: int = 3, out: str | os.PathLike | None = None, *, confidence: float = 0.9,
         power_budget_w: float | None = None, fixed: Mapping[str, Any] | None = None, workers: int | None = 1,
         plot: bool | None = None, progress: bool = False) -> PlanResults:
    """The smallest integer ``param`` in ``lo..hi`` whose runs meet every SLO (``"METRIC<=X"``) with
    ``confidence`` over ``seeds`` seeds, within ``power_budget_w`` peak watts, as ``agentwatt plan``
    finds it (``plan/plan.py``). ``fixed``: further dotted-key overrides. ``out``: as in ``sweep``."""
    from agentwatt.plan.plan import parse_slo, plan as run_plan
    texts = [slo] if isinstance(slo, str) else list(slo)
    slos = [parse_slo(s) if isinstance(s, str) else s for s in texts]
    with _Folder(out, "agentwatt-plan-") as folder:
        path = _scenario_file(scenario, folder)
        runner = _runner(workers)
        try:
            res = run_plan(path, slos, folder, runner, param=param, lo=lo, hi=hi, seeds=seeds, confidence=confidence,
                           budget_w=power_budget_w, fixed=dict(fixed or {}), progress=progress,
                           plot=(out is not None) if plot is None else bool(plot and out is not None))
        finally:
            runner.close()
        return PlanResults(answer=res.answer, reason=res.reason, table=res.table(), result=res,
                           out=None if out is None else folder)
