"""Issue 22: calibrated decode power is never below idle, and the sweep measures decode power at
several batch sizes (first, so a sweep cut short by its budget still has them)."""
from __future__ import annotations

import pytest

from agentwatt.calibrate import bench as B
from agentwatt.calibrate.fit import fit_decode_power, fit_power
from agentwatt.calibrate.meters import FakeMeter, NullMeter

BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def _points(decode: dict[int, float], prefill_w: float = 350.0) -> list[dict]:
    pts = [{"phase": "prefill", "batch": 1, "power_w": prefill_w, "holdout": False}]
    pts += [{"phase": "decode", "batch": b, "power_w": w, "holdout": False} for b, w in decode.items()]
    return pts


def test_decode_power_at_one_batch_size_is_flat_not_zero_at_batch_one():
    # before the fix: base 0 W, slope 75 W per doubling -> 0 W decode at batch 1 against 80 W idle
    pm = fit_power(_points({16: 300.0}), idle_w=80.0, source="fake")
    assert pm.decode_log2_batch_w == 0.0 and pm.decode_base_w == pytest.approx(300.0)
    assert all(pm.busy_w(0.0, b) >= pm.idle_w for b in BATCHES)


def test_decode_power_never_below_idle_when_the_line_would_cross_it():
    # an unconstrained line through these points is -100 W at batch 1
    pm = fit_power(_points({8: 100.0, 64: 300.0}), idle_w=80.0, source="fake")
    assert pm.decode_base_w >= 80.0 and pm.decode_log2_batch_w >= 0.0
    assert all(pm.busy_w(0.0, b) >= 80.0 for b in BATCHES)


def test_decode_and_prefill_readings_below_idle_give_idle():
    base, slope = fit_decode_power([1, 4, 16], [50.0, 60.0, 55.0], idle_w=80.0)
    assert (base, slope) == (80.0, 0.0)
    pm = fit_power(_points({1: 50.0, 16: 70.0}, prefill_w=60.0), idle_w=80.0, source="fake")
    assert pm.prefill_w == 80.0 and min(pm.busy_w(0.0, b) for b in BATCHES) >= 80.0


def test_unconstrained_data_is_still_recovered_exactly():
    base, slope = fit_decode_power([1, 4, 16, 64], [300 + 12 * k for k in (0, 2, 4, 6)], idle_w=60.0)
    assert (base, slope) == pytest.approx((300.0, 12.0))


def test_a_grid_with_one_decode_batch_size_is_refused():
    with pytest.raises(ValueError, match="decode_batches"):
        B.SweepGrid(prompt_lens=(8,), prefill_batches=(1,), decode_batches=(16, 16), context_lens=(8,))
    for grid in B.GRIDS.values():
        assert len(set(grid.decode_batches)) >= 2


def test_first_metered_round_starts_with_decode_at_every_batch_size(tiny_model, monkeypatch, torch_one_thread):
    grid = B.SweepGrid(prompt_lens=(8, 16, 32), prefill_batches=(1, 2, 3), decode_batches=(1, 2, 4),
                       context_lens=(8, 32, 64), repeats=1, rounds=1, warmup=1, min_energy_window_s=0.01,
                       idle_s=0.02)
    seen: list[str] = []
    real = B.make_step
    monkeypatch.setattr(B, "make_step", lambda model, p, seed: seen.append(p.label) or real(model, p, seed))
    res = B.run_sweep(tiny_model, grid, meter=FakeMeter(lambda key: 100.0), seed=7, progress=False)
    assert sorted(seen[:4]) == sorted(["decode b1 ctx8", "decode b2 ctx8", "decode b4 ctx8", "prefill b1 prompt8"])
    assert len(res.points) == res.planned
    # without a meter the order is the plain seeded permutation
    seen.clear()
    B.run_sweep(tiny_model, grid, meter=NullMeter("x"), seed=7, progress=False)
    assert sorted(seen) == sorted(p.label for p in B.plan_points(grid))
