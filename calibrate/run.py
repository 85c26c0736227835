"""``calibrate(preset, device, out)``: build the model, sweep, fit, write a measured profile.

    device check -> build_model (random weights) -> pick_meter -> run_sweep -> fit_latency/fit_power
    -> Profile(source="measured", provenance) -> save_profile (atomic)
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import time
from pathlib import Path
from typing import Any, Callable

import torch

from agentwatt.core import __version__
from agentwatt.calibrate.bench import SweepGrid, SweepResult, default_grid, run_sweep
from agentwatt.calibrate.fit import fit_latency, fit_power, unavailable_power
from agentwatt.calibrate.meters import Meter, parse_device, pick_meter
from agentwatt.calibrate.models import (INIT_STD, ModelConfig, build_model, default_dtype, expected_n_params,
                                        get_preset, model_shape)
from agentwatt.core.profile import Hardware, Profile, profile_from_dict, save_profile
from agentwatt.core.errors import InputError, MeasurementUnavailable

GIB = 2**30


def resolve_device(device: str) -> torch.device:
    """Check ``device`` names something usable here; one-line errors otherwise."""
    try:
        kind, index = parse_device(device)
    except ValueError:
        raise InputError(f"--device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'") from None
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise MeasurementUnavailable(f"--device {device}: no CUDA device (torch.cuda.is_available() is False); "
                                     "use --device cpu")
    if index >= torch.cuda.device_count():
        raise InputError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    return torch.device("cuda", index)


# ------------------------------------------------------------------------------- host facts

def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def total_ram_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    try:
        m = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo.read_text(encoding="ascii"), re.M)
        if m:
            return int(m.group(1)) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def describe_hardware(dev: torch.device, meter_info: dict[str, Any]) -> Hardware:
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        return Hardware(device_name=props.name, kind="gpu", tp=1, mem_gib_per_device=props.total_memory / GIB,
                        tdp_w_per_device=meter_info.get("power_limit_w"))
    return Hardware(device_name=cpu_model_name(), kind="cpu", tp=1, mem_gib_per_device=total_ram_bytes() / GIB)


def free_bytes_for_sweep(dev: torch.device, weight_bytes: int) -> int:
    """Memory a sweep point may use: 85 % of the device (or RAM) minus the weights."""
    total = torch.cuda.get_device_properties(dev).total_memory if dev.type == "cuda" else total_ram_bytes()
    return int(0.85 * total) - weight_bytes


def sync_for(dev: torch.device):
    if dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


def step_timer(dev: torch.device) -> tuple[str, Callable[[], float]]:
    """Thread CPU time for single-threaded CPU runs (immune to time slicing), else wall time."""
    if dev.type == "cpu" and torch.get_num_threads() == 1:
        return "thread_cpu", time.thread_time
    return "wall", time.perf_counter


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


# ------------------------------------------------------------------------------------ main

def calibrate(preset: str, device: str, out: Path | None, budget_minutes: float | None = None, seed: int = 0,
              progress: bool = True, *, threads: int | None = None, meter: Meter | None = None,
              grid: SweepGrid | None = None) -> Profile:
    """Measure ``preset`` on ``device`` and return (and, with ``out``, write) a measured profile.

    ``threads``: torch intra-op threads for the sweep; default 1 on CPU, torch's choice on CUDA.
    One CPU thread is far steadier on a shared machine (two threads lose up to ~10x whenever another
    process takes a core), and with one thread the steps are timed in thread CPU time, which leaves
    out the time the OS gave to other processes (equal to wall time on an idle machine).
    ``meter`` and ``grid`` override the automatic choices (tests use a fake meter and a small grid).
    """
    t_start = time.perf_counter()
    cfg = get_preset(preset)
    if budget_minutes is not None and not budget_minutes > 0:
        raise InputError(f"--budget-minutes = {budget_minutes}: expected a number > 0")
    if threads is not None and threads < 1:
        raise InputError(f"--threads = {threads}: expected an integer >= 1")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    previous_threads = torch.get_num_threads()
    if threads is None and dev.type == "cpu":
        threads = 1
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _calibrate(preset, cfg, dev, out, budget_minutes, seed, progress, meter, grid, t_start)
    finally:
        torch.set_num_threads(previous_threads)


def check_weights_fit(cfg: ModelConfig, dev: torch.device) -> None:
    """Refuse before building a model whose weights alone exceed 85 % of the device (or RAM)."""
    need = expected_n_params(cfg) * default_dtype(dev).itemsize
    total = torch.cuda.get_device_properties(dev).total_memory if dev.type == "cuda" else total_ram_bytes()
    if need > 0.85 * total:
        raise MeasurementUnavailable(
            f"--preset {cfg.name}: its weights need {need / GIB:.1f} GiB ({default_dtype(dev)}), "
            f"more than 85 % of the {total / GIB:.1f} GiB on {dev}: use a smaller preset or a bigger device")


def _calibrate(preset: str, cfg: ModelConfig, dev: torch.device, out: Path | None, budget_minutes: float | None,
               seed: int, progress: bool, meter: Meter | None, grid: SweepGrid | None, t_start: float) -> Profile:
    check_weights_fit(cfg, dev)
    model = build_model(cfg, dev, seed=seed)
    shape = model_shape(model)
    kind = "gpu" if dev.type == "cuda" else "cpu"
    grid = grid or default_grid(preset, kind)
    meter = meter or pick_meter(str(dev))
    timer, clock = step_timer(dev)
    try:
        sweep = run_sweep(model, grid, meter=meter, seed=seed,
                          budget_s=budget_minutes * 60 if budget_minutes is not None else None,
                          sync=sync_for(dev), progress=progress,
                          mem_bytes=free_bytes_for_sweep(dev, shape.weight_bytes), clock=clock)
        meter_info = meter.info()
    finally:
        meter.close()
    hardware = describe_hardware(dev, meter_info)
    latency = fit_latency(sweep.points)
    if meter.available:
        power = fit_power(sweep.points, sweep.idle_w, meter.source, max_w=hardware.tdp_w_per_device)
    else:
        power = unavailable_power(meter.reason or "no energy meter")
    provenance = _provenance(preset, dev, model.dtype, meter, meter_info, sweep, hardware, budget_minutes, seed)
    provenance["step_timer"] = timer
    if dev.type == "cpu":  # the "datasheet" a roofline transfer of this CPU profile needs (core/gpus.py)
        from agentwatt.calibrate.hostpeaks import measure_cpu_peaks
        provenance["cpu_peaks"] = measure_cpu_peaks().to_dict()
    provenance["wall_time_s"] = round(time.perf_counter() - t_start, 3)
    profile = Profile(name=f"{preset}-{_slug(hardware.device_name)}", source="measured", model=shape,
                      hardware=hardware, latency=latency, power=power, provenance=provenance,
                      measurements=sweep.points)
    profile_from_dict(profile.to_dict(), "calibrated profile")  # what we write must load back
    if out is not None:
        save_profile(profile, out)
    return profile


def _provenance(preset: str, dev: torch.device, dtype: torch.dtype, meter: Meter, meter_info: dict[str, Any],
                sweep: SweepResult, hardware: Hardware, budget_minutes: float | None, seed: int) -> dict[str, Any]:
    prov: dict[str, Any] = {
        "tool": "agentwatt calibrate", "agentwatt_version": __version__,
        "torch_version": torch.__version__, "python_version": platform.python_version(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "preset": preset, "device": str(dev), "device_name": hardware.device_name,
        "dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "weights": f"random normal(0, {INIT_STD}), seed {seed}", "seed": seed,
        "meter": {"source": meter.source, "available": meter.available, "reason": meter.reason, **meter_info},
        "idle_w": sweep.idle_w, "budget_minutes": budget_minutes, **sweep.summary(),
    }
    if dev.type == "cuda":
        prov["cuda_version"] = torch.version.cuda
    return prov
