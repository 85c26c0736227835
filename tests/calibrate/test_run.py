"""End to end: `agentwatt calibrate --preset tiny --device cpu` on this machine, and error paths."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from agentwatt.calibrate.bench import SweepGrid, default_grid, plan_points
from agentwatt.cli.calibrate import calibrate_cmd, summarize
from agentwatt.calibrate.meters import FakeMeter, pick_meter
from agentwatt.core.profile import load_profile
from agentwatt.calibrate.run import calibrate, cpu_model_name, total_ram_bytes
from agentwatt.core.errors import InputError, MeasurementUnavailable

TINY_GRID = SweepGrid(prompt_lens=(8, 16, 32), prefill_batches=(1, 2, 3), decode_batches=(1, 2, 4),
                      context_lens=(8, 32, 64), repeats=1, rounds=1, warmup=1, min_energy_window_s=0.01, idle_s=0.02)


@pytest.fixture(scope="module")
def tiny_cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "tiny.json"
    t0 = time.perf_counter()
    result = CliRunner().invoke(calibrate_cmd, ["--preset", "tiny", "--device", "cpu", "--out", str(out),
                                                "--no-progress"])
    return result, out, time.perf_counter() - t0


def test_tiny_cpu_calibration_is_fast_and_fits_its_holdout(tiny_cli_run):
    result, out, wall = tiny_cli_run
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "latency fit: MAPE" in result.output and f"wrote {out}" in result.output
    prof = load_profile(out)
    fit = prof.latency.fit
    print(f"\ntiny cpu calibration: {wall:.1f} s; fit MAPE {fit.mape:.3f} (max {fit.max_ape:.3f}); "
          f"holdout MAPE {fit.holdout_mape:.3f} (max {fit.holdout_max_ape:.3f}, {fit.holdout_n_points} points)")
    assert wall < 120
    assert fit.holdout_n_points >= 4 and fit.holdout_mape <= 0.15
    assert prof.source == "measured" and prof.model.name == "tiny" and prof.hardware.kind == "cpu"


def test_profile_has_provenance_and_never_a_zero_joule(tiny_cli_run):
    _, out, _ = tiny_cli_run
    prof = load_profile(out)
    prov = prof.provenance
    for key in ("device_name", "torch_version", "agentwatt_version", "date_utc", "preset", "dtype", "threads",
                "meter", "grid", "wall_time_s", "step_timer"):
        assert key in prov, key
    planned = len(plan_points(default_grid("tiny", "cpu")))
    assert prov["threads"] == 1 and prov["dtype"] == "float32" and prov["points_measured"] == planned
    assert prof.hardware.tp == 1 and prof.hardware.mem_gib_per_device > 0
    assert len(prof.measurements) == planned
    for r in prof.measurements:
        assert r["energy_j"] is None or r["energy_j"] > 0
    assert "0.0 J" not in out.read_text()
    if not pick_meter("cpu").available:  # this CI machine: a VM without RAPL
        assert prof.power.available is False and prof.power.reason
        assert all(r["energy_j"] is None and r["power_w"] is None for r in prof.measurements)
        raw = json.loads(out.read_text())["power"]
        assert raw["idle_w"] is None and raw["prefill_w"] is None and raw["source"] == "unavailable"


def test_calibrate_with_a_meter_fits_power(tmp_path):
    watts = lambda key: 55.0 if key == "idle" else (180.0 if key.startswith("prefill") else 120.0)  # noqa: E731
    out = tmp_path / "p.json"
    prof = calibrate("tiny", "cpu", out, progress=False, grid=TINY_GRID,
                     meter=FakeMeter(watts, source="rapl", info={"rapl_domains": ["intel-rapl:0 (package-0)"]}))
    again = load_profile(out)
    assert again.power == prof.power and prof.power.available and prof.power.source == "rapl"
    assert prof.power.idle_w == pytest.approx(55.0) and prof.power.prefill_w == pytest.approx(180.0)
    assert prof.power.decode_base_w == pytest.approx(120.0) and prof.power.decode_log2_batch_w == pytest.approx(0.0)
    assert prof.provenance["meter"]["rapl_domains"] == ["intel-rapl:0 (package-0)"]
    assert all(r["energy_j"] > 0 for r in prof.measurements)
    text = summarize(prof, out)
    assert "power (rapl): idle 55.0 W, prefill 180.0 W" in text and "power fit: MAPE" in text
    cut = replace(prof, provenance={**prof.provenance, "truncated_by_budget": True, "rounds_completed": 0,
                                    "skipped": [{"point": "decode b1 ctx8", "reason": "time budget"}]})
    assert "stopped after 0 of 1 rounds; 1 points never measured" in summarize(cut, None)


def test_calibrate_restores_torch_threads():
    before = torch.get_num_threads()
    calibrate("tiny", "cpu", None, progress=False, grid=TINY_GRID, threads=1)
    assert torch.get_num_threads() == before


def test_tiny_budget_reports_what_to_raise():
    with pytest.raises(MeasurementUnavailable, match="raise --budget-minutes"):
        calibrate("tiny", "cpu", None, budget_minutes=1e-9, progress=False, grid=TINY_GRID)


def test_unknown_preset_lists_valid_presets():
    with pytest.raises(InputError, match="expected one of tiny, smollm2-135m, llama-3.2-1b, llama-3.1-8b"):
        calibrate("nope", "cpu", None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line():
    with pytest.raises(MeasurementUnavailable) as e:
        calibrate("tiny", "cuda", None)
    assert str(e.value) == ("--device cuda: no CUDA device (torch.cuda.is_available() is False); "
                            "use --device cpu")


@pytest.mark.parametrize("kwargs, match", [({"device": "tpu"}, "expected 'cpu', 'cuda'"),
                                           ({"budget_minutes": 0}, "budget-minutes = 0"),
                                           ({"threads": 0}, "threads = 0")])
def test_bad_arguments_are_input_errors(kwargs, match):
    args = {"preset": "tiny", "device": "cpu", "out": None, **kwargs}
    with pytest.raises(InputError, match=match):
        calibrate(**args)


def test_cli_propagates_project_errors(tmp_path):
    result = CliRunner().invoke(calibrate_cmd, ["--preset", "nope", "--out", str(tmp_path / "x.json")])
    assert result.exit_code != 0 and isinstance(result.exception, InputError)
    assert not (tmp_path / "x.json").exists()


def test_host_facts(tmp_path):
    assert cpu_model_name() and total_ram_bytes() > 0
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n")
    assert cpu_model_name(tmp_path / "cpuinfo") == "Test CPU 9000"
    (tmp_path / "meminfo").write_text("MemTotal:        2048 kB\n")
    assert total_ram_bytes(tmp_path / "meminfo") == 2048 * 1024
    assert total_ram_bytes(Path("/nonexistent")) > 0


def test_weights_too_big_for_the_device_are_refused_before_building(monkeypatch):
    import agentwatt.calibrate.run as run_mod
    monkeypatch.setattr(run_mod, "total_ram_bytes", lambda: 2**30)
    run_mod.check_weights_fit(run_mod.get_preset("smollm2-135m"), torch.device("cpu"))  # 0.5 GiB fits
    with pytest.raises(MeasurementUnavailable, match="weights need 4.6 GiB"):
        calibrate("llama-3.2-1b", "cpu", None)
