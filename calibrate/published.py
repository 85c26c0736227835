"""Bundled profiles built from published measurements (``source: published/estimate``).

Each bundled profile is one (model, GPU, TP) pair whose step-time coefficients come from the GPU
efficiencies fitted in ``calibrate/measured.py`` (Vidur operator profiles + LLM-Inference-Bench vLLM
runs) and whose power model is the activity model fitted there to measured NVML average power. The
fit error reported with each profile is the leave-one-model-out error on the end-to-end vLLM runs of
that GPU (the model of the profile left out of the fit when it was measured), so it is a held-out
figure, not the fit's own residual.

Regenerate the JSON files (and ``core/data/efficiency.json``) with
``python -m agentwatt.calibrate.published``; a test checks the shipped files equal what this builds.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from agentwatt.calibrate import measured as M
from agentwatt.core.derive import fits_for, hardware_for
from agentwatt.core.models import get_model
from agentwatt.core.profile import FitStats, Profile, save_profile

# (profile name, model, GPU, TP): the paper's two setups (Kim et al. 2026: Llama-3.1-8B on one
# A100-40GB, Llama-3.1-70B on 8 x A100-40GB) and the same models on H100
BUNDLED = [
    ("llama-3.1-8b_a100-40gb", "llama-3.1-8b", "a100-40gb", 1),
    ("llama-3.1-70b_8xa100-40gb", "llama-3.1-70b", "a100-40gb", 8),
    ("llama-3.1-8b_h100", "llama-3.1-8b", "h100", 1),
    ("llama-3.1-70b_4xh100", "llama-3.1-70b", "h100", 4),
]
SOURCES = [
    "Vidur operator profiles: microsoft/vidur data/profiling (MIT), commit 7d47513",
    "Chitty-Venkata et al., LLM-Inference-Bench (SC'24 workshops): argonne-lcf/LLM-Inference-Bench (BSD-3), commit 4211f5d",
    "Vadari et al., 'The Model Parking Tax', arXiv 2605.23918 (idle with a CUDA context)",
    "GPU datasheets via core/gpus.py; model configs via core/data/models.json",
]


def holdout_error(model: str, gpu: str) -> FitStats:
    """Leave-one-model-out error of the end-to-end runs of ``gpu`` (the family of ``model`` left out)."""
    base = model.replace("llama-3.1", "llama-3")
    cases = M._argonne_cases(gpu)
    family = [c for c in cases if c[0].name == base]
    excluded = base if family else None
    errs = []
    for m, tp, b, i, o, y in (family or cases):
        lat = M.derive(m.name, gpu, tp, exclude_model=excluded)
        errs.append(abs(M.static_batch(lat, b, i, o)[1] / y - 1))
    eng = M.fit_engine(gpu)
    return FitStats(n_points=eng.n, mape=eng.mape, max_ape=float("nan") if not errs else float(np.max(errs)),
                    holdout_n_points=len(errs), holdout_mape=float(np.mean(errs)) if errs else None,
                    holdout_max_ape=float(np.max(errs)) if errs else None,
                    note=(f"end-to-end vLLM static batches on {gpu}; held out: "
                          + (f"every {base} run (model left out of the fit)" if excluded else
                             "none of this model measured: all runs of the GPU, derived")))


def build(name: str, model: str, gpu: str, tp: int) -> Profile:
    spec = get_model(model)
    lat = M.derive(model, gpu, tp)
    lat = type(lat)(**{**lat.__dict__, "fit": holdout_error(model, gpu)})
    power = M.fit_power(gpu if gpu in M.PARKED_W else "h100")
    chip, eng, _ = fits_for(gpu, M.latency_table())
    chip = replace(chip, gpu=M.CHIP.get(gpu, gpu))   # provenance names the GPU the operators were measured on
    return Profile(
        name=name, source="published/estimate", model=spec.shape(2), hardware=hardware_for(gpu, tp),
        latency=lat, power=power,
        provenance={"built_by": "agentwatt.calibrate.published", "references": SOURCES,
                    "chip_fit": {k: round(v, 6) if isinstance(v, float) else v for k, v in chip.__dict__.items()},
                    "engine_fit": {k: round(v, 6) if isinstance(v, float) else v for k, v in eng.__dict__.items()},
                    "notes": ["latency: smooth roofline with efficiencies fitted to measured operators and "
                              "measured vLLM runs (calibrate/measured.py); Llama-3 measurements stand in for "
                              "Llama-3.1 (same shapes)",
                              "power: activity model fitted to measured NVML average power (LLM-Inference-Bench)"]},
        measurements=[])


def write_all(folder: Path | None = None) -> list[Path]:
    folder = folder or Path(__file__).resolve().parents[1] / "core" / "data"   # agentwatt/core/data
    M.write_efficiency(folder / "efficiency.json")
    return [save_profile(build(*row), folder / f"{row[0]}.json") for row in BUNDLED]


if __name__ == "__main__":
    for p in write_all():
        print(p)
