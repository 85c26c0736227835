"""The sweep: plan, features, records, energy windows with a fake meter, budget, memory guard."""
from __future__ import annotations

import pytest

from agentwatt.calibrate import bench as B
from agentwatt.calibrate.meters import FakeMeter, NullMeter

SMALL = B.SweepGrid(prompt_lens=(8, 16, 32), prefill_batches=(1, 2, 3), decode_batches=(1, 2, 4),
                    context_lens=(8, 32, 64), repeats=1, rounds=1, warmup=1, min_energy_window_s=0.01, idle_s=0.02)
RECORD_KEYS = {"phase", "batch", "prefill_tokens", "prefill_attn", "decode_seqs", "decode_ctx", "time_s",
               "time_s_p25", "time_s_p75", "repeats", "energy_j", "power_w", "holdout"}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_step_features_follow_the_profile_definitions():
    assert B.step_features("prefill", 4, 100) == {"prefill_tokens": 400, "prefill_attn": 40_000,
                                                  "decode_seqs": 0, "decode_ctx": 0}
    assert B.step_features("decode", 8, 1000) == {"prefill_tokens": 0, "prefill_attn": 0,
                                                 "decode_seqs": 8, "decode_ctx": 8000}
    with pytest.raises(ValueError):
        B.step_features("train", 1, 1)


def test_plan_holds_out_interior_points_of_each_phase():
    plan = B.plan_points(B.default_grid("tiny", "cpu"))
    assert len(plan) == 5 * 3 + 5 * 5
    for phase, lengths, batches in (("prefill", (32, 512), (1, 4)), ("decode", (16, 2048), (1, 16))):
        held = [p for p in plan if p.phase == phase and p.holdout]
        assert held, phase
        assert all(p.length not in lengths and p.batch not in batches for p in held)


def test_grid_counts_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        B.SweepGrid(prompt_lens=(1,), prefill_batches=(1,), decode_batches=(1,), context_lens=(1,), repeats=4)
    assert B.default_grid("llama-3.1-8b", "gpu") is B.GRIDS[("*", "gpu")]


def test_sweep_without_meter_has_no_energy_and_no_zero(tiny_model):
    res = B.run_sweep(tiny_model, SMALL, meter=NullMeter("no meter here"), seed=1, progress=False)
    assert res.idle is None and res.idle_w is None and not res.truncated
    assert len(res.points) == res.planned == 18
    for r in res.points:
        assert RECORD_KEYS <= set(r) and r["energy_j"] is None and r["power_w"] is None
        assert r["time_s_p25"] <= r["time_s"] <= r["time_s_p75"] and r["time_s"] > 0
        assert ("prompt_len" in r) == (r["phase"] == "prefill") and ("context_len" in r) == (r["phase"] == "decode")


def test_sweep_with_fake_meter_measures_idle_and_energy_per_step(tiny_model):
    watts = lambda key: 40.0 if key == "idle" else (200.0 if key.startswith("prefill") else 150.0)  # noqa: E731
    grid = B.SweepGrid(**{**SMALL.__dict__, "repeats": 3, "rounds": 3})
    res = B.run_sweep(tiny_model, grid, meter=FakeMeter(watts), seed=2, progress=False)
    assert res.idle_w == pytest.approx(40.0)
    for r in res.points:
        assert r["repeats"] == 9 and r["energy_steps"] >= 1
        assert r["power_w"] == pytest.approx(200.0 if r["phase"] == "prefill" else 150.0)
        assert r["energy_j"] > 0


def test_point_order_is_seeded(tiny_model, monkeypatch):
    seen = []
    real = B.make_step
    monkeypatch.setattr(B, "make_step", lambda model, p, seed: seen.append(p.label) or real(model, p, seed))
    B.run_sweep(tiny_model, SMALL, meter=NullMeter("x"), seed=7, progress=False)
    first, seen[:] = list(seen), []
    B.run_sweep(tiny_model, SMALL, meter=NullMeter("x"), seed=7, progress=False)
    assert seen == first and first != [p.label for p in B.plan_points(SMALL)]


def test_budget_stops_the_sweep_and_says_so(tiny_model):
    res = B.run_sweep(tiny_model, SMALL, meter=NullMeter("x"), budget_s=0.0, progress=False)
    assert res.truncated and res.points == [] and len(res.skipped) == 18
    assert res.summary()["truncated_by_budget"] is True and res.skipped[0]["reason"] == "time budget"
    assert res.rounds_completed == 0


def test_points_too_big_for_memory_are_skipped_with_reason(tiny_model):
    budget = B.point_bytes(tiny_model, B.SweepPoint(phase="decode", batch=1, length=8))
    res = B.run_sweep(tiny_model, SMALL, meter=NullMeter("x"), progress=False, mem_bytes=budget)
    assert res.points and res.skipped
    assert all("GiB" in s["reason"] for s in res.skipped)
    assert len(res.points) + len(res.skipped) == res.planned
