"""Energy meters behind one small, Zeus-shaped interface.

    meter.begin_window("decode b8")
    ...work...
    m = meter.end_window("decode b8")    # Measurement(time_s, energy_j, source, reason)

``energy_j`` is ``None`` with a ``reason`` whenever the energy is not known: no meter, a counter
that did not advance, a read that failed. It is never ``0.0`` for "unknown". A measurement with
energy may still carry a ``reason`` as a warning (an NVML window shorter than 1 s).

Meters: ``NvmlMeter`` (GPU energy counter, Volta or newer), ``RaplMeter`` (CPU package energy from
powercap sysfs), ``NullMeter`` (no meter, with the reason), and for tests ``FakeMeter`` (constant or
per-window power) and ``ReplayMeter`` (recorded counter samples). ``pick_meter(device)`` returns the
best one for a device; constructors raise ``MeasurementUnavailable`` and ``pick_meter`` turns that
into a ``NullMeter`` carrying the reason.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from agentwatt.core.errors import MeasurementUnavailable

DEFAULT_POWERCAP = Path("/sys/class/powercap")
MIN_NVML_WINDOW_S = 1.0
NVML_ARCH_VOLTA = 5
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2

Clock = Callable[[], float]


@dataclass(frozen=True, kw_only=True)
class Measurement:
    time_s: float
    energy_j: float | None
    source: str
    reason: str | None = None

    @property
    def power_w(self) -> float | None:
        if self.energy_j is None or self.time_s <= 0:
            return None
        return self.energy_j / self.time_s


class Meter:
    """Base: open windows by key; subclasses say how to read a counter and difference two reads.

    ``_read()`` returns an opaque counter state or raises ``MeasurementUnavailable``; a failed read
    makes that window's energy ``None`` with the reason, it never stops the caller.
    """

    source = "unavailable"

    def __init__(self, clock: Clock = time.perf_counter):
        self._clock = clock
        self._open: dict[str, tuple[float, Any, str | None]] = {}

    @property
    def available(self) -> bool:
        return True

    @property
    def reason(self) -> str | None:
        return None

    def info(self) -> dict[str, Any]:
        """What the meter knows about its device (name, power limit, clocks), for provenance."""
        return {}

    def close(self) -> None:
        """Release the meter's library handle, if any."""

    def begin_window(self, key: str) -> None:
        if key in self._open:
            raise ValueError(f"meter window {key!r} is already open")
        self._sync()
        t, state, err = self._sample()
        self._open[key] = (t, state, err)

    def end_window(self, key: str) -> Measurement:
        if key not in self._open:
            raise ValueError(f"meter window {key!r} was never begun")
        t0, s0, err0 = self._open.pop(key)
        self._sync()
        t1, s1, err1 = self._sample()
        dt = t1 - t0
        if err0 or err1:
            return Measurement(time_s=dt, energy_j=None, source=self.source, reason=err0 or err1)
        energy, reason = self._energy_between(key, s0, s1, dt)
        return Measurement(time_s=dt, energy_j=energy, source=self.source, reason=reason)

    def read_state(self) -> tuple[float, Any, str | None]:
        """One raw counter read ``(time, state, error)``, no device sync: for a sampler thread that
        differences consecutive reads itself (``calibrate/powerseries.py``)."""
        return self._sample()

    def energy_between(self, s0: Any, s1: Any, dt: float) -> tuple[float | None, str | None]:
        """Joules between two ``read_state`` states ``dt`` seconds apart (``None`` with the reason)."""
        return self._energy_between("sample", s0, s1, dt)

    def _sample(self) -> tuple[float, Any, str | None]:
        try:
            state = self._read()
        except MeasurementUnavailable as e:
            return self._clock(), None, str(e)
        return self._clock(), state, None

    def _sync(self) -> None:
        pass

    def _read(self) -> Any:
        return None

    def _energy_between(self, key: str, s0: Any, s1: Any, dt: float) -> tuple[float | None, str | None]:
        raise NotImplementedError


class NullMeter(Meter):
    """No meter here: every window has ``energy_j=None`` and this reason."""

    source = "unavailable"

    def __init__(self, reason: str, clock: Clock = time.perf_counter):
        super().__init__(clock)
        self._reason = reason

    @property
    def available(self) -> bool:
        return False

    @property
    def reason(self) -> str:
        return self._reason

    def _energy_between(self, key, s0, s1, dt):
        return None, self._reason


# ------------------------------------------------------------------------------------- NVML

def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError:
        raise MeasurementUnavailable("NVML bindings not installed: pip install nvidia-ml-py") from None
    return pynvml


def describe_nvml_error(nvml: Any, call: str, err: Exception) -> str:
    """The one place NVML errors become sentences."""
    code = getattr(err, "value", None)
    if code == getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", NVML_ERROR_LIBRARY_NOT_FOUND):
        return "NVML library not found (no NVIDIA driver on this machine)"
    if code == getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", NVML_ERROR_NOT_SUPPORTED):
        return f"NVML {call} is not supported on this GPU"
    if code == getattr(nvml, "NVML_ERROR_NO_PERMISSION", NVML_ERROR_NO_PERMISSION):
        return f"NVML {call}: permission denied"
    return f"NVML {call} failed: {err}"


class NvmlMeter(Meter):
    """GPU energy from ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load; Volta+).

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each read so queued kernels are counted.
    ``nvml`` is the ``pynvml`` module, or a fake with the same names in tests.
    """

    source = "nvml_energy"

    def __init__(self, index: int = 0, *, uuid: str | None = None, sync: Callable[[], None] | None = None,
                 nvml: Any = None, clock: Clock = time.perf_counter, min_window_s: float = MIN_NVML_WINDOW_S):
        super().__init__(clock)
        self._nvml = nvml if nvml is not None else _import_pynvml()
        self._sync_fn = sync
        self.min_window_s = min_window_s
        self._call("nvmlInit")
        if uuid is not None:
            self._handle = self._call("nvmlDeviceGetHandleByUUID", uuid)
        else:
            self._handle = self._call("nvmlDeviceGetHandleByIndex", index)
        self._name = _text(self._optional("nvmlDeviceGetName", self._handle)) or f"GPU {index}"
        arch = self._call("nvmlDeviceGetArchitecture", self._handle)
        if arch < getattr(self._nvml, "NVML_DEVICE_ARCH_VOLTA", NVML_ARCH_VOLTA):
            raise MeasurementUnavailable(f"{self._name}: GPU architecture {arch} is older than Volta: "
                                         "the NVML energy counter needs Volta or newer")
        self._read()  # a counter that is NotSupported fails here, not in the first window
        limit_mw = self._optional("nvmlDeviceGetEnforcedPowerLimit", self._handle)
        self._info = {
            "device_name": self._name, "architecture": arch,
            "power_limit_w": limit_mw / 1000.0 if limit_mw is not None else None,
            "max_sm_clock_mhz": self._optional("nvmlDeviceGetMaxClockInfo", self._handle,
                                               getattr(self._nvml, "NVML_CLOCK_SM", NVML_CLOCK_SM)),
            "max_mem_clock_mhz": self._optional("nvmlDeviceGetMaxClockInfo", self._handle,
                                                getattr(self._nvml, "NVML_CLOCK_MEM", NVML_CLOCK_MEM)),
            "driver_version": _text(self._optional("nvmlSystemGetDriverVersion")),
        }

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutdown failures are not worth reporting
            pass

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._nvml, name)(*args)
        except self._nvml.NVMLError as e:
            raise MeasurementUnavailable(describe_nvml_error(self._nvml, name, e)) from None

    def _optional(self, name: str, *args: Any) -> Any:
        try:
            return self._call(name, *args)
        except (MeasurementUnavailable, AttributeError):
            return None

    def _sync(self) -> None:
        if self._sync_fn is not None:
            self._sync_fn()

    def _read(self) -> int:
        return int(self._call("nvmlDeviceGetTotalEnergyConsumption", self._handle))

    def _energy_between(self, key, s0, s1, dt):
        if s1 == s0:
            return None, (f"NVML energy counter did not advance over {dt:.3f} s "
                          "(it updates every ~20-100 ms): use a longer window")
        if s1 < s0:
            return None, "NVML energy counter went backwards (driver reloaded?)"
        reason = None
        if dt < self.min_window_s:
            reason = (f"window {dt:.3f} s is shorter than {self.min_window_s:g} s: "
                      "counter granularity (~100 ms) makes this energy imprecise")
        return (s1 - s0) / 1000.0, reason


def _text(v: Any) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


# ------------------------------------------------------------------------------------- RAPL

_PACKAGE_ZONE = re.compile(r"intel-rapl:(\d+)$")
_SUB_ZONE = re.compile(r"intel-rapl:(\d+):(\d+)$")


@dataclass(frozen=True, kw_only=True)
class RaplDomain:
    zone: str           # e.g. "intel-rapl:0" or "intel-rapl:0:2"
    name: str           # e.g. "package-0", "dram"
    energy_path: Path
    max_range_uj: int


def read_sysfs(path: Path) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def counter_delta(before: int, after: int, max_range: int) -> int:
    """Increase of a counter that wraps to 0 at ``max_range`` (at most one wrap in between)."""
    return after - before if after >= before else after + max_range - before


def _read_value(reader: Callable[[Path], str], path: Path) -> str:
    try:
        return reader(path).strip()
    except PermissionError:
        raise MeasurementUnavailable(
            f"{path}: permission denied (RAPL energy is root-only since Linux 5.10; "
            "run as root or make energy_uj readable)") from None
    except FileNotFoundError:
        raise MeasurementUnavailable(f"{path}: missing: expected a RAPL powercap file") from None
    except OSError as e:
        raise MeasurementUnavailable(f"{path}: cannot read ({e.strerror})") from None


def _read_int(reader: Callable[[Path], str], path: Path) -> int:
    text = _read_value(reader, path)
    try:
        return int(text)
    except ValueError:
        raise MeasurementUnavailable(f"{path} = {text!r}: expected an integer") from None


def _sub_zones(root: Path, package: Path, n: str) -> dict[str, Path]:
    """Sub-zones of package ``n`` found inside it or as symlinks at the top level (deduplicated)."""
    found: dict[str, Path] = {}
    for parent in (package, root):
        for d in sorted(parent.iterdir()) if parent.is_dir() else ():
            m = _SUB_ZONE.match(d.name)
            if m and m.group(1) == n and d.name not in found:
                found[d.name] = d
    return found


def discover_rapl_domains(root: Path, *, include_dram: bool = True,
                          reader: Callable[[Path], str] = read_sysfs) -> list[RaplDomain]:
    """Package zones ``intel-rapl:N`` (+ their ``dram`` sub-zone). Nested zones (core, uncore, and
    psys which contains the packages) are never added, so nothing is counted twice."""
    if not root.is_dir():
        raise MeasurementUnavailable(f"{root}: powercap sysfs absent (a VM or container without RAPL)")
    zones = sorted((d for d in root.iterdir() if _PACKAGE_ZONE.match(d.name)), key=lambda d: d.name)
    if not zones:
        raise MeasurementUnavailable(f"{root}: no RAPL zone intel-rapl:N")
    domains: list[RaplDomain] = []
    for zone in zones:
        name = _read_value(reader, zone / "name")
        if not name.startswith("package"):
            continue
        domains.append(_domain(reader, zone, name))
        if include_dram:
            for sub_name, sub in _sub_zones(root, zone, _PACKAGE_ZONE.match(zone.name).group(1)).items():
                if _read_value(reader, sub / "name") == "dram":
                    domains.append(_domain(reader, sub, "dram"))
    if not domains:
        raise MeasurementUnavailable(f"{root}: RAPL zones found but no package domain")
    return domains


def _domain(reader: Callable[[Path], str], zone: Path, name: str) -> RaplDomain:
    return RaplDomain(zone=zone.name, name=name, energy_path=zone / "energy_uj",
                      max_range_uj=_read_int(reader, zone / "max_energy_range_uj"))


class RaplMeter(Meter):
    """CPU energy from powercap sysfs: package domains (+ DRAM), wrap-around corrected.

    A window longer than one wrap period (minutes at full load) cannot be corrected; windows here
    are seconds long.
    """

    source = "rapl"

    def __init__(self, root: str | Path = DEFAULT_POWERCAP, *, include_dram: bool = True,
                 reader: Callable[[Path], str] = read_sysfs, clock: Clock = time.perf_counter):
        super().__init__(clock)
        self.root = Path(root)
        self._reader = reader
        self.domains = discover_rapl_domains(self.root, include_dram=include_dram, reader=reader)
        self._read()  # permission problems surface here

    def info(self) -> dict[str, Any]:
        return {"rapl_domains": [f"{d.zone} ({d.name})" for d in self.domains]}

    def _read(self) -> tuple[int, ...]:
        return tuple(_read_int(self._reader, d.energy_path) for d in self.domains)

    def _energy_between(self, key, s0, s1, dt):
        uj = sum(counter_delta(a, b, d.max_range_uj) for a, b, d in zip(s0, s1, self.domains))
        if uj == 0:
            return None, f"RAPL counters did not advance over {dt:.3f} s"
        return uj / 1e6, None


# ------------------------------------------------------------------------------ test meters

class FakeMeter(Meter):
    """Energy = power x elapsed time; ``power_w`` is a number or a function of the window key."""

    source = "fake"

    def __init__(self, power_w: float | Callable[[str], float] = 100.0, *, clock: Clock = time.perf_counter,
                 info: dict[str, Any] | None = None, source: str = "fake"):
        super().__init__(clock)
        self.source = source
        self._power = power_w if callable(power_w) else (lambda key: float(power_w))
        self._info = info or {}

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def _energy_between(self, key, s0, s1, dt):
        return self._power(key) * dt, None


class ReplayMeter(Meter):
    """Replays recorded ``(time_s, counter_j)`` samples, one per read (begin and end of each window)."""

    source = "replay"

    def __init__(self, samples: Iterable[tuple[float, float]]):
        super().__init__()
        self._samples = iter(samples)

    def _sample(self):
        try:
            t, e = next(self._samples)
        except StopIteration:
            return 0.0, None, "replay meter ran out of samples"
        return t, e, None

    def _energy_between(self, key, s0, s1, dt):
        if s1 <= s0:
            return None, f"replayed counter did not advance ({s0} -> {s1})"
        return s1 - s0, None


# ------------------------------------------------------------------------------------ choose

def parse_device(device: str) -> tuple[str, int]:
    """``"cpu"`` -> ("cpu", 0); ``"cuda"``/``"cuda:1"`` -> ("cuda", index)."""
    kind, _, idx = device.partition(":")
    if kind not in ("cpu", "cuda") or (idx and not idx.isdigit()) or (kind == "cpu" and idx):
        raise ValueError(f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    return kind, int(idx or 0)


def pick_meter(device: str, *, powercap_root: str | Path = DEFAULT_POWERCAP, nvml: Any = None) -> Meter:
    """The best meter for ``device``; a ``NullMeter`` with the reason when there is none."""
    kind, index = parse_device(device)
    try:
        if kind == "cuda":
            return _cuda_meter(index, nvml)
        return RaplMeter(powercap_root)
    except MeasurementUnavailable as e:
        return NullMeter(f"no energy meter for {device}: {e}")


def _cuda_meter(index: int, nvml: Any) -> NvmlMeter:
    import torch  # torch's device numbering can differ from NVML's (CUDA_VISIBLE_DEVICES): match by UUID

    uuid = None
    try:
        raw = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        uuid = None if raw is None else (str(raw) if str(raw).startswith("GPU-") else f"GPU-{raw}")
    except (RuntimeError, AssertionError):
        pass
    sync = lambda: torch.cuda.synchronize(index)  # noqa: E731
    if uuid is not None:
        try:
            return NvmlMeter(uuid=uuid, sync=sync, nvml=nvml)
        except MeasurementUnavailable as e:
            if "not found" in str(e).lower() and "library" in str(e).lower():
                raise
    return NvmlMeter(index, sync=sync, nvml=nvml)
