"""Measured power traces in the formats meters write, read into one series (time_s, watts):

* ``nvidia-smi --query-gpu=timestamp,index,power.draw --format=csv`` (``power.draw [W]`` column,
  values such as ``300.12 W``; ``--format=csv,noheader`` is refused: the header names the columns);
* ``dcgmi dmon -e 155`` text output (``#Entity  POWER`` header, rows ``GPU 0  250.3``; no time
  column, so the k-th row of a GPU is at k × the sampling interval, dcgmi's ``-d``, 1000 ms by default);
* Zeus ``PowerMonitor.get_power_timeline()`` saved as JSON (ML.ENERGY's tooling uses Zeus): a map
  of GPU index → list of ``[timestamp_s, watts]`` pairs, optionally under one top-level key.

Several GPUs are summed (the simulated ``gpu_power_w`` is the fleet's): each GPU's series is
interpolated linearly onto the union of the sample times, over the span all GPUs cover.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from agentwatt.core.errors import InputError

FORMATS = "agentwatt CSV/Parquet (time_s or timestamp, power_w), nvidia-smi --query-gpu CSV, dcgmi dmon, Zeus JSON"
_WATTS = re.compile(r"^\s*([-+0-9.eE]+)\s*W?\s*$")


def sniff(path: Path) -> str:
    """``zeus``, ``dcgm``, ``nvidia-smi`` or ``native`` from the file's name and first line."""
    if path.suffix.lower() == ".json":
        return "zeus"
    if path.suffix.lower() == ".parquet":
        return "native"
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
    except UnicodeDecodeError:
        return "native"   # the native reader names the problem
    if first.lstrip().startswith("#") and "entity" in first.lower():
        return "dcgm"
    if "power.draw" in first:
        return "nvidia-smi"
    return "native"


def sum_gpus(series: list[tuple[np.ndarray, np.ndarray]], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Several GPUs' (t, w) as one summed series over the span they all cover."""
    if len(series) == 1:
        return series[0]
    lo = max(float(t.min()) for t, _ in series)
    hi = min(float(t.max()) for t, _ in series)
    if hi <= lo:
        raise InputError(f"{where}: the GPUs' samples do not overlap in time: expected one common span")
    grid = np.unique(np.concatenate([t for t, _ in series]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    return grid, sum(np.interp(grid, t, w) for t, w in series)


def _watts(values: pd.Series, where: str, first_row: int) -> np.ndarray:
    out = np.empty(len(values))
    for i, v in enumerate(values.astype(str)):
        m = _WATTS.match(v)
        if not m:
            raise InputError(f"{where}: row {first_row + i}: power {v.strip()!r}: expected a number of watts "
                             f"(e.g. 300.12 W)")
        out[i] = float(m.group(1))
    return out


def read_nvidia_smi(p: Path) -> tuple[np.ndarray, np.ndarray]:
    df = pd.read_csv(p, skipinitialspace=True, dtype=str)
    df.columns = [c.strip() for c in df.columns]
    power = next((c for c in df.columns if c.startswith("power.draw")), None)
    if power is None or "timestamp" not in df:
        raise InputError(f"{p}: nvidia-smi CSV without timestamp and power.draw columns: expected "
                         f"--query-gpu=timestamp,index,power.draw --format=csv")
    ts = pd.to_datetime(df["timestamp"].str.strip(), format="%Y/%m/%d %H:%M:%S.%f", errors="coerce")
    bad = np.flatnonzero(ts.isna().to_numpy())
    if len(bad):
        raise InputError(f"{p}: row {int(bad[0]) + 2}: timestamp {df['timestamp'].iloc[bad[0]]!r}: expected "
                         f"nvidia-smi's YYYY/MM/DD HH:MM:SS.mmm")
    t = (ts - ts.min()).dt.total_seconds().to_numpy(dtype=float)
    w = _watts(df[power], str(p), 2)
    gpu = next((c for c in ("index", "pci.bus_id", "uuid") if c in df), None)
    if gpu is None:
        return t, w
    return sum_gpus([(t[idx], w[idx]) for _, idx in df.groupby(gpu, sort=True).indices.items()], str(p))


def read_dcgm(p: Path, interval_s: float) -> tuple[np.ndarray, np.ndarray]:
    lines = p.read_text(encoding="utf-8").splitlines()
    header = lines[0].lstrip("#").split()
    names = [h.upper() for h in header[1:]]          # after "Entity"
    col = next((i for i, h in enumerate(names) if h in ("POWER", "PWR", "POWER_USAGE")), None)
    if col is None:
        raise InputError(f"{p}: dcgmi dmon output without a POWER column (header {lines[0].strip()!r}): expected "
                         f"dcgmi dmon -e 155")
    per_gpu: dict[str, list[float]] = {}
    for n, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if not parts or line.lstrip().startswith("#") or parts[0] in ("ID", "Id"):
            continue
        if len(parts) < 2 + col + 1:
            raise InputError(f"{p}: line {n}: {line.strip()!r}: expected ENTITY ID then {len(names)} value(s)")
        value = parts[2 + col]
        try:
            per_gpu.setdefault(f"{parts[0]} {parts[1]}", []).append(float(value))
        except ValueError:
            raise InputError(f"{p}: line {n}: power {value!r}: expected a number of watts") from None
    if not per_gpu:
        raise InputError(f"{p}: no samples: expected rows such as 'GPU 0  250.3'")
    return sum_gpus([(np.arange(len(v)) * interval_s, np.array(v)) for v in per_gpu.values()], str(p))


def read_zeus(p: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not JSON ({str(e)[:80]}): expected a Zeus power timeline") from None
    if isinstance(doc, dict) and len(doc) == 1 and isinstance(next(iter(doc.values())), dict):
        doc = next(iter(doc.values()))
    expect = "expected Zeus PowerMonitor.get_power_timeline(): {gpu index: [[timestamp_s, watts], ...]}"
    if not isinstance(doc, dict) or not doc:
        raise InputError(f"{p}: {expect}")
    series = []
    for gpu, pairs in sorted(doc.items()):
        a = np.array(pairs, dtype=object) if isinstance(pairs, list) else None
        ok = a is not None and a.ndim == 2 and a.shape[1] == 2 and len(a) > 0 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in a.ravel())
        if not ok:
            raise InputError(f"{p}: GPU {gpu}: {expect}")
        a = a.astype(float)
        order = np.argsort(a[:, 0], kind="stable")
        series.append((a[order, 0], a[order, 1]))
    t0 = min(float(t.min()) for t, _ in series)
    return sum_gpus([(t - t0, w) for t, w in series], str(p))
