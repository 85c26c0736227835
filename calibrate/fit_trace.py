"""Fit a profile to a recorded step trace (``core/steptrace.py``): numpy/scipy only, no torch.

Rows are put in time order (``start_s``); the first 80 % fit, the last 20 % are held out. Two forms
of the one step model (``core/step.py``) are fitted, each minimising the *relative* error of the step
time, and the one with the lower held-out MAPE is kept (a tie, within 1 %, keeps the additive one):

* **additive**: ``overhead + a·P + b·A + c·D + d·C`` (``weight_s = token_s = 0``), non-negative least
  squares as in ``calibrate/fit.py`` (its ``nnls_relative``);
* **smooth roofline**: the additive terms plus ``linear(T) = (W^p + (token_s·T)^p)^(1/p)`` with
  ``T = P + D``. For a fixed knee ``T* = W / token_s`` and exponent ``p`` the model is linear in its
  other coefficients (``W·(1 + (T/T*)^p)^(1/p)`` is one column), so a grid over (T*, p) solved by
  NNLS gives robust starts; ``scipy.optimize.least_squares`` then refines all eight coefficients on
  the relative error, bounds ≥ 0 and ``overlap_p`` in [1, 20]. There is no mixture-of-experts term
  (an MoE engine's expert reads are absorbed by ``W`` and ``token_s``).

Power (where ``energy_j`` is present): the activity model of ``core/step.py`` — per device,
``E / (tp · duration) = idle_w + compute_w · t_c/t + memory_w · t_m/t`` with ``(t_c, t_m)`` from
``core.step.activity`` on the fitted latency model (so the simulator recomputes the same shares);
non-negative least squares on the relative error of the watts, on the same 80/20 split. ``idle_w``
is fitted as the intercept unless given. Steps at the TDP (``max_w``) are left out of the power fit.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares, nnls

from agentwatt.calibrate.fit import ape, fit_stats, nnls_relative, unavailable_power
from agentwatt.core import step
from agentwatt.core.errors import InputError
from agentwatt.core.profile import FitStats, Hardware, LatencyModel, ModelShape, PowerModel, Profile
from agentwatt.core.steptrace import StepTrace

HOLDOUT_FRACTION = 0.2
MIN_ROWS = 20               # rows needed in all (at least 16 to fit, 4 held out)
P_BOUNDS = (1.0, 20.0)
KNEE_GRID = 24              # knees T* on a log grid over the trace's token range
P_GRID = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0)
GRID_MAX_ROWS = 20_000      # the grid stage uses an even subsample of at most this many rows
POLISH_STARTS = 4           # the best grid points refined by least_squares
POLISH_SUBSAMPLE = 2_000    # ... on an even subsample of this many fitting rows, the best then on all
NAMES = ("overhead_s", "prefill_token_s", "prefill_attn_s", "decode_seq_s", "decode_ctx_s", "weight_s", "token_s",
         "overlap_p")


@dataclass(frozen=True)
class TraceArrays:
    """The trace in time order as float arrays (energy NaN where unmeasured) and the holdout mask."""

    start: np.ndarray
    t: np.ndarray
    P: np.ndarray
    A: np.ndarray
    D: np.ndarray
    C: np.ndarray
    E: np.ndarray
    holdout: np.ndarray

    @property
    def x(self) -> np.ndarray:
        """Rows ``[1, P, A, D, C]``."""
        return np.column_stack([np.ones_like(self.t), self.P, self.A, self.D, self.C])


def trace_arrays(trace: StepTrace, holdout_fraction: float = HOLDOUT_FRACTION) -> TraceArrays:
    if len(trace) < MIN_ROWS:
        raise InputError(f"{trace.path}: {len(trace)} step rows: expected at least {MIN_ROWS} (the last "
                         f"{100 * holdout_fraction:.0f} % are held out to choose the model form)")
    a = np.array([[r[0], r[1], r[2], r[3], r[4], r[5], np.nan if r[6] is None else r[6]] for r in trace.rows],
                 dtype=np.float64)
    a = a[np.argsort(a[:, 0], kind="stable")]
    n = len(a)
    n_fit = n - max(1, int(round(holdout_fraction * n)))
    hold = np.zeros(n, dtype=bool)
    hold[n_fit:] = True
    return TraceArrays(start=a[:, 0], t=a[:, 1], P=a[:, 2], A=a[:, 3], D=a[:, 4], C=a[:, 5], E=a[:, 6], holdout=hold)


def _model(w: np.ndarray, p: float | None = None) -> LatencyModel:
    """A LatencyModel from ``NAMES``-ordered coefficients (5 of them: the additive form)."""
    vals = [float(v) for v in w]
    kw = dict(zip(NAMES, vals))
    if p is not None:
        kw["overlap_p"] = p
    return LatencyModel(**kw)


def predict(lat: LatencyModel, d: TraceArrays) -> np.ndarray:
    """Step seconds of every row (vectorised ``core.step.step_s``; checked against it in the tests)."""
    t = lat.overhead_s + lat.prefill_token_s * d.P + lat.prefill_attn_s * d.A + lat.decode_seq_s * d.D \
        + lat.decode_ctx_s * d.C
    if lat.weight_s or lat.token_s:
        p = lat.overlap_p
        t = t + (lat.weight_s ** p + (lat.token_s * (d.P + d.D)) ** p) ** (1.0 / p)
    return t


def fit_additive(d: TraceArrays) -> LatencyModel:
    fit = ~d.holdout
    w = nnls_relative(d.x[fit], d.t[fit])
    return _model(w)


def _roofline_column(T: np.ndarray, knee: float, p: float) -> np.ndarray:
    """``(1 + (T/T*)^p)^(1/p)``: linear(T) / W for a knee ``T* = W / token_s``."""
    return (1.0 + (T / knee) ** p) ** (1.0 / p)


def fit_roofline(d: TraceArrays) -> LatencyModel:
    fit = ~d.holdout
    x, y = d.x[fit], d.t[fit]
    T = d.P[fit] + d.D[fit]
    stride = max(1, len(y) // GRID_MAX_ROWS)
    xs, ys, Ts = x[::stride], y[::stride], T[::stride]
    t_hi = max(2.0, float(T.max()))
    starts = []
    for knee in np.geomspace(1.0, 4.0 * t_hi, KNEE_GRID):
        for p in P_GRID:
            col = _roofline_column(Ts, knee, p)
            w = nnls_relative(np.column_stack([xs, col]), ys)
            r = (np.column_stack([xs, col]) @ w - ys) / ys
            starts.append((float(r @ r), knee, p, w))
    starts.sort(key=lambda s: s[0])
    # refine the best few starts on an even subsample, then the best on every fitting row; unknowns
    # scaled to about 1 (least_squares with x_scale="jac" on top)
    y_ref = float(np.median(y))
    f_max = np.maximum(np.abs(x).max(axis=0), 1e-300)
    scale = np.array([*(y_ref / f_max), y_ref, y_ref / t_hi, 1.0])   # 5 additive, W, token_s, p
    lo, hi = np.zeros(8), np.full(8, np.inf)
    lo[7], hi[7] = P_BOUNDS
    sub = np.unique(np.linspace(0, len(y) - 1, min(len(y), POLISH_SUBSAMPLE)).round().astype(int))
    best = None
    for _, knee, p, w in starts[:POLISH_STARTS]:
        u0 = np.array([*w[:5], w[5], w[5] / knee, p]) / scale
        u0 = np.minimum(np.maximum(u0, lo), hi)
        sol = _polish(x[sub], y[sub], T[sub], scale, u0, lo, hi, max_nfev=300)
        if best is None or sol.cost < best.cost:
            best = sol
    sol = _polish(x, y, T, scale, best.x, lo, hi, max_nfev=60)
    c = (sol.x if sol.cost <= _cost(x, y, T, scale, best.x) else best.x) * scale
    return _model(c[:7], float(c[7]))


def _parts(u: np.ndarray, scale: np.ndarray, T: np.ndarray):
    c = u * scale
    w, kt, p = c[5], c[6] * T, c[7]
    return c, w, kt, p, (w ** p + kt ** p) ** (1.0 / p)


def _cost(x, y, T, scale, u) -> float:
    c, *_, lin = _parts(u, scale, T)
    r = (x @ c[:5] + lin - y) / y
    return 0.5 * float(r @ r)


def _polish(x: np.ndarray, y: np.ndarray, T: np.ndarray, scale: np.ndarray, u0: np.ndarray, lo: np.ndarray,
            hi: np.ndarray, max_nfev: int):
    """``least_squares`` on the relative step-time error in the scaled unknowns ``u`` (coefficients /
    ``scale``), with the smooth max's derivatives in closed form."""
    xy = x / y[:, None]

    def resid(u: np.ndarray) -> np.ndarray:
        c, *_, lin = _parts(u, scale, T)
        return (x @ c[:5] + lin - y) / y

    def jac(u: np.ndarray) -> np.ndarray:
        c, w, kt, p, lin = _parts(u, scale, T)
        L = np.maximum(lin, 1e-300)
        a, b = w / L, kt / L                 # both in [0, 1], a^p + b^p = 1

        def xlogx(v: np.ndarray) -> np.ndarray:   # v^p·ln v, 0 at v = 0
            pos = v > 0
            return np.where(pos, v ** p * np.log(np.where(pos, v, 1.0)), 0.0)
        j = np.empty((len(y), 8))
        j[:, :5] = xy
        j[:, 5] = a ** (p - 1.0) / y
        j[:, 6] = b ** (p - 1.0) * T / y
        j[:, 7] = L / p * (xlogx(a) + xlogx(b)) / y   # d/dp (W^p + (kT)^p)^(1/p)
        return j * scale
    return least_squares(resid, u0, jac=jac, bounds=(lo, hi), x_scale="jac", method="trf", xtol=1e-12, ftol=1e-12,
                         gtol=1e-12, max_nfev=max_nfev)


@dataclass(frozen=True)
class FormFit:
    form: str
    latency: LatencyModel
    stats: FitStats


def fit_forms(d: TraceArrays) -> dict[str, FormFit]:
    """Both forms with their fit and held-out errors."""
    out = {}
    n_fit, n_hold = int((~d.holdout).sum()), int(d.holdout.sum())
    split = (f"first {n_fit} steps in time fit, last {n_hold} held out")
    for form, fn, how in (("additive", fit_additive, "non-negative least squares on relative error"),
                          ("smooth roofline", fit_roofline, "NNLS grid over (knee, p), then least_squares on "
                                                            "relative error, bounds >= 0, overlap_p in [1, 20]")):
        lat = fn(d)
        stats = fit_stats(predict(lat, d), d.t, d.holdout, note=f"step trace, {form} form: {how}; {split}")
        out[form] = FormFit(form, replace(lat, fit=stats), stats)
    return out


TIE = (0.01, 1e-6)          # held-out MAPEs closer than 1 % of the additive one (or 1e-6) are a tie


def choose(forms: dict[str, FormFit]) -> FormFit:
    """The form with the lower held-out MAPE; a tie (``TIE``) goes to the additive one (fewer coefficients)."""
    add, roof = forms["additive"], forms["smooth roofline"]
    a, r = add.stats.holdout_mape, roof.stats.holdout_mape
    return roof if r < a - max(TIE[0] * a, TIE[1]) else add


def fit_power(d: TraceArrays, lat: LatencyModel, tp: int, *, idle_w: float | None, max_w: float | None,
              where: str) -> PowerModel:
    """The activity power model from the rows that carry energy (module docstring); unavailable with
    the reason when they cannot make one."""
    metered = np.isfinite(d.E)
    if not metered.any():
        return unavailable_power(f"{where}: no energy_j values (column absent or every cell empty)")
    watts = d.E / (tp * d.t)
    tc, tm = step.activity(lat, d.P, d.A, d.D, d.C)
    sc = np.minimum(1.0, np.broadcast_to(tc, d.t.shape) / d.t)
    sm = np.minimum(1.0, np.broadcast_to(tm, d.t.shape) / d.t)
    use = metered & (watts > 0)
    if max_w is not None:
        use &= watts < 0.995 * max_w
    fit_rows = use & ~d.holdout
    if fit_rows.sum() < 3:
        return unavailable_power(f"{where}: {int(fit_rows.sum())} metered steps below the TDP in the fitted part: "
                                 f"expected at least 3")
    if idle_w is None:
        x = np.column_stack([np.ones(len(d.t)), sc, sm])
        w = nnls_relative(x[fit_rows], watts[fit_rows])
        idle, cw, mw = (float(v) for v in w)
    else:
        x = np.column_stack([sc, sm])
        target = watts - idle_w
        ok = fit_rows & (target > 0)
        if ok.sum() < 2:
            cw = mw = 0.0
        else:   # relative error of the watts: rows divided by the step's watts
            xr = x[ok] / watts[ok, None]
            (cw, mw), _ = nnls(xr, target[ok] / watts[ok])
        idle = float(idle_w)
    pm = PowerModel(available=True, source="step_trace", idle_w=idle, compute_w=float(cw), memory_w=float(mw),
                    max_w=max_w)
    pred = idle + cw * sc + mw * sm     # PowerModel.activity_w, vectorised
    if max_w is not None:
        pred = np.minimum(pred, max_w)
    stats = fit_stats(pred[use], watts[use], d.holdout[use],
                      note=f"per-device watts of metered steps (energy_j / (tp x duration_s)): activity model, "
                           f"non-negative least squares on relative error; idle {'given' if idle_w is not None else 'fitted'}")
    return replace(pm, fit=stats)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fit_trace(trace: StepTrace, *, name: str, model: ModelShape, hardware: Hardware, idle_w: float | None = None,
              model_from: str = "", holdout_fraction: float = HOLDOUT_FRACTION) -> Profile:
    """A profile (``source: measured``) from a step trace; see the module docstring."""
    d = trace_arrays(trace, holdout_fraction)
    forms = fit_forms(d)
    best = choose(forms)
    lat = best.latency
    if lat.step_s(1, 1, 0, 0) <= 0 or lat.step_s(0, 0, 1, 1) <= 0:
        raise InputError(f"{trace.path}: the fit gave a zero step time: expected steps whose duration grows with "
                         f"their work")
    power = fit_power(d, lat, hardware.tp, idle_w=idle_w, max_w=hardware.tdp_w_per_device, where=trace.path)
    n_e = int(np.isfinite(d.E).sum())
    try:
        digest = sha256(trace.path)
    except OSError:
        digest = None
    prov: dict[str, Any] = {
        "built_by": "agentwatt calibrate fit-trace",
        "step_trace": {"file": Path(trace.path).name, "path": str(trace.path), "sha256": digest,
                       "rows": len(trace), "rows_fit": int((~d.holdout).sum()), "rows_holdout": int(d.holdout.sum()),
                       "rows_with_energy": n_e, "span_s": float(d.start[-1] + d.t[-1] - d.start[0])},
        "form": best.form,
        "forms": {f.form: {"mape": f.stats.mape, "max_ape": f.stats.max_ape, "holdout_mape": f.stats.holdout_mape,
                           "holdout_max_ape": f.stats.holdout_max_ape} for f in forms.values()},
        "model_shape_from": model_from,
        "notes": [f"latency: {best.form} form chosen by the lower held-out MAPE on the last "
                  f"{100 * holdout_fraction:.0f} % of the steps in time",
                  "power: activity model fitted to the metered steps" if power.available
                  else f"power: unavailable ({power.reason})"],
    }
    ranges = {k: [float(v.min()), float(v.max())] for k, v in (("prefill_tokens", d.P), ("prefill_attn", d.A),
                                                               ("decode_seqs", d.D), ("decode_ctx", d.C),
                                                               ("duration_s", d.t))}
    prov["step_trace"]["ranges"] = ranges
    return Profile(name=name, source="measured", model=model, hardware=hardware, latency=lat, power=power,
                   provenance=prov, measurements=[])


def relative_errors(lat: LatencyModel, d: TraceArrays) -> np.ndarray:
    return ape(predict(lat, d), d.t)


def agreement(a: LatencyModel, b: LatencyModel, grid: list[tuple[float, float, float, float]]) -> float:
    """The largest relative difference of two models' step times over a grid of (P, A, D, C)."""
    return max(abs(a.step_s(*g) - b.step_s(*g)) / b.step_s(*g) for g in grid) if grid else math.nan
