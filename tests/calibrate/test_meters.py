"""Meters with fakes: NVML (module fake), RAPL (a sysfs tree in tmp_path), null, fake, replay."""
from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from agentwatt.calibrate import meters as mt
from agentwatt.core.errors import MeasurementUnavailable


def ticking(*times: float):
    """A clock returning the given times in order."""
    it = iter(times)
    return lambda: next(it)


# ------------------------------------------------------------------------------------- NVML

class FakeNVMLError(Exception):
    def __init__(self, value: int):
        super().__init__(value)
        self.value = value


class FakeNvml:
    """The names NvmlMeter uses from pynvml; energy readings (mJ) are replayed in order."""

    NVMLError = FakeNVMLError
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_DEVICE_ARCH_VOLTA = 5
    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2

    def __init__(self, *, arch: int = 9, energy_mj=(1_000_000, 1_000_000, 1_700_000), init_error: int | None = None,
                 energy_error: int | None = None):
        self.arch, self.init_error, self.energy_error = arch, init_error, energy_error
        self._energy = iter(energy_mj)
        self.shut = False

    def nvmlInit(self):
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)

    def nvmlDeviceGetHandleByIndex(self, i):
        return f"handle{i}"

    def nvmlDeviceGetName(self, h):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetArchitecture(self, h):
        return self.arch

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if self.energy_error is not None:
            raise FakeNVMLError(self.energy_error)
        return next(self._energy)

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return 700_000

    def nvmlDeviceGetMaxClockInfo(self, h, which):
        return {1: 1980, 2: 2619}[which]

    def nvmlSystemGetDriverVersion(self):
        raise FakeNVMLError(999)  # optional facts may fail without stopping the meter

    def nvmlShutdown(self):
        self.shut = True


def test_nvml_energy_is_counter_difference_with_sync_before_each_read():
    syncs = []
    nvml = FakeNvml(energy_mj=(5_000, 10_000, 712_000))
    meter = mt.NvmlMeter(nvml=nvml, sync=lambda: syncs.append(1), clock=ticking(100.0, 102.0))
    meter.begin_window("w")
    m = meter.end_window("w")
    assert m == mt.Measurement(time_s=2.0, energy_j=702.0, source="nvml_energy", reason=None)
    assert m.power_w == 351.0 and len(syncs) == 2
    info = meter.info()
    assert info["device_name"] == "NVIDIA H100 80GB HBM3" and info["power_limit_w"] == 700.0
    assert info["max_sm_clock_mhz"] == 1980 and info["driver_version"] is None
    meter.close()
    assert nvml.shut


def test_nvml_window_shorter_than_one_second_is_flagged():
    meter = mt.NvmlMeter(nvml=FakeNvml(energy_mj=(0, 0, 30_000)), clock=ticking(0.0, 0.2))
    meter.begin_window("short")
    m = meter.end_window("short")
    assert m.energy_j == 30.0 and "shorter than 1 s" in m.reason


def test_nvml_counter_not_advancing_gives_none_never_zero():
    meter = mt.NvmlMeter(nvml=FakeNvml(energy_mj=(7, 7, 7)), clock=ticking(0.0, 1.5))
    meter.begin_window("w")
    m = meter.end_window("w")
    assert m.energy_j is None and "did not advance" in m.reason


def test_nvml_library_not_found_with_fake_and_with_real_pynvml_error_class():
    with pytest.raises(MeasurementUnavailable, match="NVML library not found"):
        mt.NvmlMeter(nvml=FakeNvml(init_error=12))
    pynvml = pytest.importorskip("pynvml")

    class RealErrors(FakeNvml):
        NVMLError = pynvml.NVMLError

        def nvmlInit(self):
            raise pynvml.NVMLError_LibraryNotFound()

    with pytest.raises(MeasurementUnavailable, match="NVML library not found"):
        mt.NvmlMeter(nvml=RealErrors())


def test_nvml_on_this_machine_matches_its_driver():
    """Without an NVIDIA driver the meter is refused with the reason; with one it works and names
    the device (the branch is chosen by the machine, not by the outcome)."""
    from pathlib import Path
    if not Path("/proc/driver/nvidia/version").exists():
        with pytest.raises(MeasurementUnavailable, match=r"^NVML library not found|^NVML"):
            mt.NvmlMeter()
        return
    meter = mt.NvmlMeter()
    try:
        assert meter.info()["device_name"]
    finally:
        meter.close()


def test_nvml_pre_volta_gpu_is_refused():
    with pytest.raises(MeasurementUnavailable, match="older than Volta"):
        mt.NvmlMeter(nvml=FakeNvml(arch=4))  # Pascal


def test_nvml_counter_not_supported_is_refused_at_construction():
    with pytest.raises(MeasurementUnavailable, match="nvmlDeviceGetTotalEnergyConsumption is not supported"):
        mt.NvmlMeter(nvml=FakeNvml(energy_error=3))


def test_nvml_error_mid_run_gives_none_with_reason():
    nvml = FakeNvml(energy_mj=(1, 2))
    meter = mt.NvmlMeter(nvml=nvml, clock=ticking(0.0, 2.0))
    meter.begin_window("w")
    nvml.energy_error = 999
    m = meter.end_window("w")
    assert m.energy_j is None and "failed" in m.reason


def test_pick_meter_cuda_without_nvml_returns_null_with_reason():
    meter = mt.pick_meter("cuda", nvml=FakeNvml(init_error=12))
    assert isinstance(meter, mt.NullMeter) and not meter.available
    assert "NVML library not found" in meter.reason


def test_pick_meter_cuda_with_working_nvml():
    meter = mt.pick_meter("cuda:0", nvml=FakeNvml())
    assert isinstance(meter, mt.NvmlMeter) and meter.available


# ------------------------------------------------------------------------------------- RAPL

def zone(root: Path, rel: str, name: str, energy: int | None = 1000, max_range: int | None = 2**32) -> Path:
    d = root / rel
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    if energy is not None:
        (d / "energy_uj").write_text(f"{energy}\n")
    if max_range is not None:
        (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    return d


@pytest.fixture
def powercap(tmp_path) -> Path:
    """Two packages with core/uncore/dram sub-zones, plus psys (which contains the packages)."""
    root = tmp_path / "powercap"
    zone(root, "intel-rapl:0", "package-0", energy=10_000_000, max_range=262_143_328_850)
    zone(root, "intel-rapl:0/intel-rapl:0:0", "core", energy=1)
    zone(root, "intel-rapl:0/intel-rapl:0:1", "uncore", energy=1)
    zone(root, "intel-rapl:0/intel-rapl:0:2", "dram", energy=500_000, max_range=65_712_999_613)
    zone(root, "intel-rapl:1", "package-1", energy=20_000_000, max_range=262_143_328_850)
    zone(root, "intel-rapl:2", "psys", energy=99_000_000)
    return root


def set_energy(root: Path, rel: str, uj: int) -> None:
    (root / rel / "energy_uj").write_text(f"{uj}\n")


def test_rapl_sums_packages_and_dram_never_nested_domains(powercap):
    meter = mt.RaplMeter(powercap, clock=ticking(0.0, 2.0))
    assert [d.name for d in meter.domains] == ["package-0", "dram", "package-1"]
    meter.begin_window("w")
    set_energy(powercap, "intel-rapl:0", 10_000_000 + 30_000_000)         # +30 J
    set_energy(powercap, "intel-rapl:0/intel-rapl:0:2", 500_000 + 4_000_000)  # +4 J
    set_energy(powercap, "intel-rapl:1", 20_000_000 + 26_000_000)         # +26 J
    set_energy(powercap, "intel-rapl:0/intel-rapl:0:0", 10**9)             # core: ignored
    set_energy(powercap, "intel-rapl:2", 10**12)                           # psys: ignored
    m = meter.end_window("w")
    assert m.energy_j == pytest.approx(60.0) and m.source == "rapl" and m.power_w == pytest.approx(30.0)


def test_rapl_without_dram_when_asked(powercap):
    assert [d.name for d in mt.RaplMeter(powercap, include_dram=False).domains] == ["package-0", "package-1"]


def test_rapl_wraparound_uses_max_energy_range(tmp_path):
    root = tmp_path / "pc"
    zone(root, "intel-rapl:0", "package-0", energy=999_000, max_range=1_000_000)
    meter = mt.RaplMeter(root, clock=ticking(0.0, 1.0))
    meter.begin_window("w")
    set_energy(root, "intel-rapl:0", 4_000)  # wrapped: 1_000 to the top, then 4_000
    assert meter.end_window("w").energy_j == pytest.approx(0.005)
    assert mt.counter_delta(999_000, 4_000, 1_000_000) == 5_000
    assert mt.counter_delta(10, 25, 1_000_000) == 15


def test_rapl_sub_zones_listed_at_top_level_are_found_once(tmp_path):
    root = tmp_path / "pc"
    zone(root, "intel-rapl:0", "package-0")
    zone(root, "intel-rapl:0:0", "dram")  # as the kernel's top-level symlink would show it
    assert [d.zone for d in mt.RaplMeter(root).domains] == ["intel-rapl:0", "intel-rapl:0:0"]


def test_rapl_counter_not_advancing_gives_none(tmp_path):
    root = tmp_path / "pc"
    zone(root, "intel-rapl:0", "package-0")
    meter = mt.RaplMeter(root, clock=ticking(0.0, 1.0))
    meter.begin_window("w")
    m = meter.end_window("w")
    assert m.energy_j is None and "did not advance" in m.reason


def test_rapl_missing_root_or_zones_or_files(tmp_path):
    with pytest.raises(MeasurementUnavailable, match="powercap sysfs absent"):
        mt.RaplMeter(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MeasurementUnavailable, match="no RAPL zone"):
        mt.RaplMeter(tmp_path / "empty")
    zone(tmp_path / "a", "intel-rapl:0", "package-0", energy=None)
    with pytest.raises(MeasurementUnavailable, match="energy_uj: missing"):
        mt.RaplMeter(tmp_path / "a")
    zone(tmp_path / "b", "intel-rapl:0", "package-0", max_range=None)
    with pytest.raises(MeasurementUnavailable, match="max_energy_range_uj: missing"):
        mt.RaplMeter(tmp_path / "b")
    zone(tmp_path / "c", "intel-rapl:0", "psys")
    with pytest.raises(MeasurementUnavailable, match="no package domain"):
        mt.RaplMeter(tmp_path / "c")


def test_rapl_permission_denied_by_injected_reader(powercap):
    def reader(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return mt.read_sysfs(path)

    with pytest.raises(MeasurementUnavailable, match="permission denied.*root-only since Linux 5.10"):
        mt.RaplMeter(powercap, reader=reader)


def test_rapl_permission_denied_through_open(monkeypatch, powercap):
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):  # tests run as root, so chmod 000 would not stop a read
        if str(file).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    meter = mt.pick_meter("cpu", powercap_root=powercap)
    assert isinstance(meter, mt.NullMeter) and "permission denied" in meter.reason


def test_pick_meter_cpu_with_and_without_rapl(tmp_path, powercap):
    assert isinstance(mt.pick_meter("cpu", powercap_root=powercap), mt.RaplMeter)
    meter = mt.pick_meter("cpu", powercap_root=tmp_path / "absent")
    assert not meter.available and "powercap sysfs absent" in meter.reason
    meter.begin_window("w")
    m = meter.end_window("w")
    assert m.energy_j is None and m.power_w is None and m.source == "unavailable" and m.reason == meter.reason


# ------------------------------------------------------------------------------ other meters

def test_windows_are_keyed_and_checked():
    meter = mt.FakeMeter(lambda key: {"a": 100.0, "b": 300.0}[key], clock=ticking(0.0, 1.0, 3.0, 4.0))
    meter.begin_window("a")
    meter.begin_window("b")
    with pytest.raises(ValueError, match="already open"):
        meter.begin_window("a")
    assert meter.end_window("a").energy_j == pytest.approx(300.0)   # 100 W x 3 s
    assert meter.end_window("b").energy_j == pytest.approx(900.0)   # 300 W x 3 s
    with pytest.raises(ValueError, match="never begun"):
        meter.end_window("a")


def test_replay_meter_replays_samples():
    meter = mt.ReplayMeter([(0.0, 10.0), (2.0, 50.0), (3.0, 50.0), (4.0, 50.0)])
    meter.begin_window("x")
    assert meter.end_window("x") == mt.Measurement(time_s=2.0, energy_j=40.0, source="replay")
    meter.begin_window("y")
    assert meter.end_window("y").energy_j is None
    meter.begin_window("z")
    assert "ran out" in meter.end_window("z").reason


def test_parse_device():
    assert mt.parse_device("cpu") == ("cpu", 0)
    assert mt.parse_device("cuda:3") == ("cuda", 3)
    for bad in ("gpu", "cuda:x", "cpu:1"):
        with pytest.raises(ValueError):
            mt.parse_device(bad)
