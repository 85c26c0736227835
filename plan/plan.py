"""Capacity planning: the smallest fleet that meets latency SLOs with stated confidence, within
a power budget.

Decision rule, for each fleet size (the value of ``--param``, default ``fleet.replicas``):

* the size is run with ``seeds`` seeds (seed i = the scenario's seed + i);
* an SLO ``METRIC<=X`` holds when the one-sided upper t-bound of METRIC over the seeds, at
  ``confidence``, is <= X (``>=``: the lower bound is >= X); the bound is taken on the log scale
  when every value is positive (``plan/uncertainty.py``), so it respects the metric's range. A seed
  without a value (no session finished) fails the SLO. METRIC is a flattened summary key such as
  ``session_e2e_s.p95`` or ``ttft_s.p99.9`` (written ``p99_9`` in the summary; either spelling works);
* a size also fails if any seed leaves sessions in flight at the drain timeout: its percentiles
  count finished sessions only and would flatter an overloaded fleet;
* the answer is the smallest size that meets every SLO, found by an exponential probe from
  ``--min`` (min, 2·min, 4·min, … up to ``--max``) and then bisection, which assumes that a bigger
  fleet never makes the metric worse. Evaluated sizes are cached (in memory and in the result
  store, so reruns and sweeps over the same points are free);
* the power budget is then checked at that size against the peak power, taken as the largest over
  the seeds of ``facility_peak_power_w`` when the summary has it, else of ``gpu_peak_power_w`` (GPU
  only): ``budget_peak_power_w`` in plan.json, beside both named peaks. Power grows with the
  fleet, so if the smallest SLO-meeting fleet is over budget, no size is.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from agentwatt.core.errors import InputError
from agentwatt.core.io import atomic_write_json
from agentwatt.plan.store import ResultStore, RunSpec, flatten
from agentwatt.plan.uncertainty import check_confidence, mean_ci, one_sided_bound

FILES = {"plot": "plan.png", "result": "plan.json"}
POWER_KEYS = (("facility_peak_power_w", "facility"), ("gpu_peak_power_w", "GPU only"))
_SLO = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(<=|>=|<|>)\s*([^\s<>=]+)\s*$")
_DOTTED_PCT = re.compile(r"\.p(\d+)\.(\d+)$")   # session_e2e_s.p99.9 → session_e2e_s.p99_9 (summary spelling)


# ------------------------------------------------------------------------------ SLOs

@dataclass(frozen=True)
class SLO:
    metric: str          # a flattened summary key, e.g. session_e2e_s.p99
    op: str              # <=, <, >=, >
    threshold: float

    @property
    def upper(self) -> bool:
        """True when the metric must stay below the threshold (latency), so its upper bound counts."""
        return self.op in ("<", "<=")

    @property
    def text(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"

    def holds(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return {"<=": value <= self.threshold, "<": value < self.threshold,
                ">=": value >= self.threshold, ">": value > self.threshold}[self.op]

    def margin(self, bound: float) -> float:
        """How far the bound is inside the threshold (negative: outside)."""
        return self.threshold - bound if self.upper else bound - self.threshold


def parse_slo(text: str) -> SLO:
    """``session_e2e_s.p99<=60`` → SLO; errors name the flag."""
    m = _SLO.match(text)
    if not m:
        raise InputError(f"--slo {text}: expected METRIC<=VALUE (or <, >=, >), e.g. session_e2e_s.p99<=60")
    try:
        threshold = float(m.group(3))
    except ValueError:
        raise InputError(f"--slo {text}: {m.group(3)!r}: expected a number") from None
    if not math.isfinite(threshold):
        raise InputError(f"--slo {text}: expected a finite threshold")
    return SLO(_DOTTED_PCT.sub(r".p\1_\2", m.group(1)), m.group(2), threshold)


# ------------------------------------------------------------------------------ assessing one size

@dataclass(frozen=True)
class SLOCheck:
    slo: SLO
    values: tuple[float, ...]     # one per seed (NaN: no value)
    mean: float
    bound: float                  # the one-sided bound the decision uses
    ci_low: float                 # two-sided interval at 2·confidence − 1, edges = one-sided bounds
    ci_high: float
    ok: bool


@dataclass(frozen=True)
class SizeAssessment:
    size: int
    seeds: tuple[int, ...]
    checks: tuple[SLOCheck, ...]
    unfinished_seeds: tuple[int, ...]   # seeds with sessions still in flight at the drain timeout
    budget_peak_power_w: float | None   # largest over seeds of the peak checked against a budget
    power_source: str | None            # which peak that is: "facility" or "GPU only"
    rows: tuple[dict[str, Any], ...] = field(repr=False, default=())

    @property
    def meets_slo(self) -> bool:
        return all(c.ok for c in self.checks) and not self.unfinished_seeds

    def max(self, key: str) -> float | None:
        vals = [r.get(key) for r in self.rows]
        vals = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return float(max(vals)) if vals else None

    def mean(self, key: str) -> float | None:
        vals = [r.get(key) for r in self.rows]
        ci = mean_ci(v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool))
        return None if ci.n == 0 else ci.mean


def _value(row: dict[str, Any], key: str) -> float:
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def assess(size: int, rows: list[dict[str, Any]], slos: list[SLO], confidence: float) -> SizeAssessment:
    """Apply the decision rule (module docstring) to one size's flattened summaries, one per seed."""
    checks = []
    for slo in slos:
        vals = tuple(_value(r, slo.metric) for r in rows)
        hi = one_sided_bound(vals, confidence, upper=True)
        lo = one_sided_bound(vals, confidence, upper=False)
        bound = hi if slo.upper else lo
        ok = all(math.isfinite(v) for v in vals) and slo.holds(bound)
        mean = sum(vals) / len(vals) if vals else math.nan
        checks.append(SLOCheck(slo, vals, mean, bound, lo, hi, ok))
    unfinished = tuple(r["seed"] for r in rows if (r.get("sessions_in_flight") or 0) > 0)
    peak, source = None, None
    for key, label in POWER_KEYS:
        vals = [r.get(key) for r in rows]
        if vals and all(isinstance(v, (int, float)) for v in vals):
            peak, source = float(max(vals)), label
            break
    return SizeAssessment(size=size, seeds=tuple(r["seed"] for r in rows), checks=tuple(checks),
                          unfinished_seeds=unfinished, budget_peak_power_w=peak, power_source=source,
                          rows=tuple(rows))


# ------------------------------------------------------------------------------ the search

def probe_ladder(lo: int, hi: int) -> list[int]:
    """lo, 2·lo, 4·lo, … capped at hi (from 1 when lo is 0)."""
    out, s = [lo], lo
    while s < hi:
        s = min(hi, max(s * 2, s + 1))
        out.append(s)
    return out


def search_smallest(lo: int, hi: int, feasible_many: Callable[[list[int]], dict[int, bool]],
                    batch: int = 1) -> int | None:
    """Smallest size in [lo, hi] for which ``feasible_many`` says True, assuming feasibility is
    monotone (once true, true for every bigger size); None if ``hi`` is infeasible.

    Exponential probe, then bisection; ``batch`` sizes are asked for at once (to keep a cluster
    busy): the probe takes the next ``batch`` rungs of the ladder, the bisection ``batch`` evenly
    spaced interior sizes.
    """
    ladder = probe_ladder(lo, hi)
    below, first = None, None          # largest known infeasible, smallest known feasible
    for i in range(0, len(ladder), batch):
        chunk = ladder[i:i + batch]
        ok = feasible_many(chunk)
        first = next((s for s in chunk if ok[s]), None)
        below = max([s for s in chunk if not ok[s] and (first is None or s < first)], default=below)
        if first is not None:
            break
    if first is None:
        return None
    if below is None:
        return first
    while first - below > 1:
        gap = first - below - 1
        k = min(batch, gap)
        inner = sorted({below + round((j + 1) * (gap + 1) / (k + 1)) for j in range(k)} - {below, first})
        ok = feasible_many(inner)
        first = next((s for s in inner if ok[s]), first)
        below = max([s for s in inner if not ok[s] and s < first], default=below)
    return first


# ------------------------------------------------------------------------------ planning

@dataclass
class PlanResult:
    param: str
    lo: int
    hi: int
    slos: list[SLO]
    confidence: float
    budget_w: float | None
    answer: int | None                       # None: nothing in range qualifies (see reason)
    smallest_meeting_slo: int | None
    reason: str | None
    evaluated: dict[int, SizeAssessment]
    non_monotone: list[int]                  # evaluated sizes above the answer that fail the SLO

    @property
    def at_answer(self) -> SizeAssessment | None:
        return None if self.answer is None else self.evaluated[self.answer]

    def table(self) -> pd.DataFrame:
        """One row per evaluated size: per SLO mean/bound/interval, power, pass/fail."""
        rows = []
        for size, a in sorted(self.evaluated.items()):
            row: dict[str, Any] = {"size": size, "seeds": len(a.seeds), "meets_slo": a.meets_slo,
                                   "unfinished_seeds": len(a.unfinished_seeds), "gpus": a.mean("gpus"),
                                   "budget_peak_power_w": a.budget_peak_power_w, "power_source": a.power_source,
                                   "gpu_peak_power_w": a.max("gpu_peak_power_w"),
                                   "facility_peak_power_w": a.max("facility_peak_power_w"),
                                   "gpu_avg_power_w": a.mean("gpu_avg_power_w"),
                                   "facility_avg_power_w": a.mean("facility_avg_power_w")}
            for c in a.checks:
                row.update({f"{c.slo.metric}.n": sum(math.isfinite(v) for v in c.values),
                            f"{c.slo.metric}.mean": c.mean, f"{c.slo.metric}.bound": c.bound,
                            f"{c.slo.metric}.ci_low": c.ci_low, f"{c.slo.metric}.ci_high": c.ci_high,
                            f"{c.slo.metric}.ok": c.ok})
            rows.append(row)
        return pd.DataFrame(rows)


class Planner:
    """Evaluates fleet sizes through a runner and a result store, caching every assessment."""

    def __init__(self, scenario: str | None, store: ResultStore, runner, *, param: str, fixed: dict[str, Any],
                 seeds: int, slos: list[SLO], confidence: float, progress: bool = False):
        from agentwatt.plan.runners import scenario_sha256
        from agentwatt.plan.sweep import base_seed
        self.scenario, self.store, self.runner = scenario, store, runner
        self.param, self.fixed, self.slos, self.confidence = param, dict(fixed), slos, confidence
        self.progress = progress
        self.sha = scenario_sha256(scenario)
        seed0 = base_seed(scenario)
        self.seeds = [seed0 + i for i in range(seeds)]
        self.cache: dict[int, SizeAssessment] = {}

    def specs(self, size: int) -> list[RunSpec]:
        from agentwatt.plan.runners import inputs_sha256
        params = {**self.fixed, self.param: size}
        inputs = inputs_sha256(self.scenario, params)
        return [RunSpec(scenario=self.scenario, scenario_sha256=self.sha, params=params, seed=s, inputs_sha256=inputs)
                for s in self.seeds]

    def evaluate(self, sizes: list[int]) -> dict[int, SizeAssessment]:
        from agentwatt.plan.sweep import execute
        new = [s for s in dict.fromkeys(sizes) if s not in self.cache]
        specs = [sp for s in new for sp in self.specs(s)]
        execute(specs, self.store, self.runner, self.progress, desc=f"plan {self.param}={','.join(map(str, new))}")
        for s in new:
            rows = [flatten(self.store.get(sp)["summary"]) for sp in self.specs(s)]
            self._check_metrics(rows[0])
            self.cache[s] = assess(s, rows, self.slos, self.confidence)
        return {s: self.cache[s] for s in sizes}

    def feasible_many(self, sizes: list[int]) -> dict[int, bool]:
        return {s: a.meets_slo for s, a in self.evaluate(sizes).items()}

    def _check_metrics(self, row: dict[str, Any]) -> None:
        for slo in self.slos:
            if slo.metric not in row:
                numeric = [k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
                near = difflib.get_close_matches(slo.metric, numeric, n=3, cutoff=0.5)
                hint = f"did you mean {', '.join(near)}?" if near else "e.g. session_e2e_s.p99, ttft_s.p90"
                raise InputError(f"--slo {slo.text}: no metric {slo.metric!r} in the summary: {hint}")


def check_search_range(scenario: str | None, param: str, lo: int, hi: int, fixed: dict[str, Any]) -> None:
    from agentwatt.sim.scenario import load_scenario
    if lo > hi:
        raise InputError(f"--min {lo} --max {hi}: expected --min <= --max")
    for flag, v in (("--min", lo), ("--max", hi)):
        try:
            load_scenario(scenario, {**fixed, param: v})
        except InputError as e:
            raise InputError(f"--param {param} {flag} {v}: {e}") from None


def check_plan_inputs(scenario: str | None, slos: list[SLO], *, param: str, lo: int, hi: int, seeds: int,
                      confidence: float, budget_w: float | None, fixed: dict[str, Any]) -> None:
    """Every check that needs no simulation, so a bad flag fails before any cluster starts."""
    from agentwatt.sim.scenario import load_scenario
    check_confidence(confidence)
    if not slos:
        raise InputError("--slo: expected at least one, e.g. --slo 'session_e2e_s.p99<=60'")
    if seeds < 2:
        raise InputError(f"--seeds {seeds}: expected at least 2: a confidence bound needs the spread over seeds")
    if budget_w is not None and not budget_w > 0:
        raise InputError(f"--power-budget-mw {budget_w / 1e6:g}: expected a number > 0")
    if param in fixed:
        raise InputError(f"--set {param}: that is the searched --param: expected other keys")
    for k, v in fixed.items():
        try:
            load_scenario(scenario, {k: v})
        except InputError as e:
            raise InputError(f"--set {k}={v!r}: {e}") from None
    check_search_range(scenario, param, lo, hi, fixed)


def plan(scenario: str | Path | None, slos: list[SLO], out_dir: str | Path, runner=None, *,
         param: str = "fleet.replicas", lo: int = 1, hi: int = 64, seeds: int = 3, confidence: float = 0.9,
         budget_w: float | None = None, fixed: dict[str, Any] | None = None, progress: bool = False,
         plot: bool = True) -> PlanResult:
    """Search the smallest ``param`` in [lo, hi] meeting ``slos`` (see the module docstring)."""
    from agentwatt.plan.runners import SerialRunner
    from agentwatt.plan.sweep import resolve_scenario
    scenario = resolve_scenario(scenario)
    fixed = dict(fixed or {})
    check_plan_inputs(scenario, slos, param=param, lo=lo, hi=hi, seeds=seeds, confidence=confidence,
                      budget_w=budget_w, fixed=fixed)
    runner = runner if runner is not None else SerialRunner()
    planner = Planner(scenario, ResultStore(out_dir), runner, param=param, fixed=fixed, seeds=seeds, slos=slos,
                      confidence=confidence, progress=progress)
    batch = max(1, runner.slots // seeds)
    smallest = search_smallest(lo, hi, planner.feasible_many, batch=batch)
    result = _decide(planner, smallest, lo, hi, budget_w)
    _write(result, Path(out_dir), plot)
    return result


def _decide(planner: Planner, smallest: int | None, lo: int, hi: int, budget_w: float | None) -> PlanResult:
    ev = dict(sorted(planner.cache.items()))
    slo_text = " and ".join(s.text for s in planner.slos)
    conf = f"{planner.confidence:.0%} confidence over {len(planner.seeds)} seeds"
    answer, reason = smallest, None
    if smallest is None:
        a = ev[hi]
        why = "; ".join(f"{c.slo.metric} bound {c.bound:.4g}" for c in a.checks)
        if a.unfinished_seeds:
            why += f"; sessions still in flight at the drain timeout for seed(s) {list(a.unfinished_seeds)}"
        reason = f"no {planner.param} in {lo}..{hi} meets {slo_text} with {conf}: at {hi}, {why}"
    elif budget_w is not None:
        a = ev[smallest]
        if a.budget_peak_power_w is None:
            raise InputError("--power-budget-mw: the summaries have no peak power (the profile has no power "
                             "model): expected a profile with power, or no budget")
        if a.budget_peak_power_w > budget_w:
            answer = None
            reason = (f"the smallest {planner.param} meeting {slo_text} with {conf} is {smallest}, but its peak "
                      f"power {a.budget_peak_power_w / 1e6:.4g} MW ({a.power_source}) exceeds the budget "
                      f"{budget_w / 1e6:.4g} MW, and bigger fleets draw more")
    bad = [s for s, a in ev.items() if smallest is not None and s > smallest and not a.meets_slo]
    return PlanResult(param=planner.param, lo=lo, hi=hi, slos=list(planner.slos), confidence=planner.confidence,
                      budget_w=budget_w, answer=answer, smallest_meeting_slo=smallest, reason=reason,
                      evaluated=ev, non_monotone=bad)


def _write(result: PlanResult, out: Path, plot: bool) -> None:
    table = result.table()
    doc = {"param": result.param, "range": [result.lo, result.hi], "slos": [s.text for s in result.slos],
           "confidence": result.confidence, "power_budget_w": result.budget_w, "answer": result.answer,
           "smallest_meeting_slo": result.smallest_meeting_slo, "reason": result.reason,
           "non_monotone_sizes": result.non_monotone,
           "evaluated": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                          for k, v in row.items()} for row in table.to_dict("records")]}
    atomic_write_json(out / FILES["result"], _plain(doc))
    if plot:
        from agentwatt.plan.plots import plan_plot
        plan_plot(table, result, out / FILES["plot"])


def _plain(obj: Any) -> Any:
    """numpy scalars → Python, for JSON."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj.item() if hasattr(obj, "item") else obj
