"""`calibrate check`: the step code, the KV slots, the request generator, the replay, the power series,
and a short end-to-end check of a tiny CPU profile (virtual clock; and wall clock with a fake meter)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agentwatt.validate import check as C
from agentwatt.calibrate.batchstep import KVPool, Segment, model_step
from agentwatt.calibrate.bench import SweepGrid
from agentwatt.calibrate.meters import FakeMeter
from agentwatt.calibrate.models import new_kv_cache
from agentwatt.calibrate.powerseries import PowerSampler, PowerSeries
from agentwatt.core.profile import load_profile
from agentwatt.calibrate.run import calibrate
from agentwatt.validate.serve import RequestSpec, Slots, StepRecord, attribute_energy, generate_requests
from agentwatt.core.errors import InputError
from agentwatt.sim.batching import Request

# A small sweep (about 3 s here) covering what the short check serves: prompts <= 160, contexts <= 256.
SMALL = SweepGrid(prompt_lens=(16, 48, 96, 160), prefill_batches=(1, 2), decode_batches=(1, 2, 4, 8),
                  context_lens=(16, 96, 256), repeats=1, rounds=3, warmup=1, min_energy_window_s=0.01, idle_s=0.02)
SHORT = C.CheckSettings(minutes=0.1, prompt_tokens=48, output_tokens=24)
# Loose bound on |p50 error| for the short check, not the goals (5 %). On this shared 2-core VM the
# machine's speed moves by up to ~35 % within minutes even in thread CPU time (the report's drift
# probe measured 0.93x-1.36x of the calibrated step times), the linear step model is 3-13 % off at
# decode batches 2-8, the loop's own costs add ~8 % per step, and the simulation amplifies a
# step-time bias (faster steps -> smaller batches): checks here gave p50 errors of -8 % to -41 %. A
# broken loop or replay (seconds vs ms, a different step budget or scheduler, prompts never
# prefilled, no batching) is off by far more.
P50_BOUND = 0.65


@pytest.fixture(scope="module")
def small_profile(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("check") / "tiny-small.json"
    calibrate("tiny", "cpu", out, progress=False, grid=SMALL, meter=FakeMeter(100.0, source="rapl"))
    return out


# ------------------------------------------------------------------------------ step code

def _reference_logits(model, full: torch.Tensor, pre: int) -> torch.Tensor:
    cache = new_kv_cache(model, 1, len(full))
    with torch.inference_mode():
        if pre:
            model(full[:pre].unsqueeze(0), cache=cache, start_pos=0)
        return model(full[pre:].unsqueeze(0), cache=cache, start_pos=pre)[0, -1]


def _pool_with_prefixes(model, cases, g):
    pool = KVPool.allocate(model, 8, 64)
    segs, refs = [], []
    for n, pre, slot, dec in cases:
        full = torch.randint(0, model.config.vocab_size, (pre + n,), generator=g)
        if pre:
            c = new_kv_cache(model, 1, pre)
            with torch.inference_mode():
                model(full[:pre].unsqueeze(0), cache=c, start_pos=0)
            pool.k[:, slot, :, :pre] = c.k[:, 0]
            pool.v[:, slot, :, :pre] = c.v[:, 0]
        refs.append(_reference_logits(model, full, pre))
        segs.append(Segment(full[pre:], pre, slot, decode=dec))
    return pool, segs, refs


@pytest.mark.parametrize("cases, batched", [
    ([(1, 10, 0, True), (1, 20, 1, True), (1, 15, 2, True), (7, 0, 3, False), (5, 3, 4, False)], True),
    ([(1, 12, 0, True), (1, 12, 1, True)], True),                 # equal contexts: no mask, the sweep's call
    ([(1, 9, 2, True), (1, 30, 5, True), (6, 0, 0, False)], False),  # decoders not in slots 0..D-1
])
def test_model_step_equals_the_model_on_each_sequence(tiny_model, cases, batched):
    pool, segs, refs = _pool_with_prefixes(tiny_model, cases, torch.Generator().manual_seed(len(cases)))
    out, info = model_step(tiny_model, pool, segs)
    assert info.batched_decode is batched
    for o, r in zip(out, refs):
        assert torch.allclose(o, r, atol=1e-4)
    ctx = [s.start + 1 for s in segs if s.decode]
    assert info.padding_tokens == (len(ctx) * max(ctx) - sum(ctx) if batched else 0)


def test_slots_keep_decoders_first_and_their_kv(tiny_model):
    pool = KVPool.allocate(tiny_model, 5, 8)
    slots = Slots(pool, 5)
    reqs = [Request(i, 4, 3, [], 0.0) for i in range(4)]
    for r in reqs:
        s = slots.admit(r)
        pool.k[:, s, :, :4] = float(r.rid)        # mark each request's KV with its id
        r.num_computed = 4
    for r in reqs[:3]:                              # three finish prefill: they decode now
        r.num_generated = 1
    slots.after_step([(r, 4) for r in reqs], [])
    assert slots.decoders == 3 and sorted(slots.slot_of[r.rid] for r in reqs[:3]) == [0, 1, 2]
    reqs[1].num_generated = 3
    slots.after_step([(r, 1) for r in reqs[:3]], [reqs[1]])   # a decoder in the middle finishes
    assert slots.decoders == 2 and {slots.slot_of[0], slots.slot_of[2]} == {0, 1}
    for r in (reqs[0], reqs[2], reqs[3]):
        assert float(pool.k[0, slots.slot_of[r.rid], 0, 3, 0]) == float(r.rid)


# ------------------------------------------------------------------------------ requests and replay

def test_generated_requests_are_seeded_and_bounded():
    a = generate_requests(3, 5.0, 20.0, 100, 50, "lognormal", max_prompt=300, max_output=120)
    assert a == generate_requests(3, 5.0, 20.0, 100, 50, "lognormal", max_prompt=300, max_output=120)
    assert a[0].arrival_s == 0.0 and all(x.arrival_s <= y.arrival_s for x, y in zip(a, a[1:]))
    assert all(1 <= r.prompt_tokens <= 300 and 1 <= r.output_tokens <= 120 for r in a)
    assert len({r.prompt_tokens for r in a}) > 5
    f = generate_requests(3, 5.0, 20.0, 100, 50, "fixed")
    assert {(r.prompt_tokens, r.output_tokens) for r in f} == {(100, 50)}
    with pytest.raises(InputError, match="--lengths 'normal': expected 'fixed' or 'lognormal'"):
        generate_requests(3, 5.0, 20.0, 100, 50, "normal")


def test_requests_become_single_call_sessions_in_order():
    specs = [RequestSpec(0.0, 10, 3), RequestSpec(0.1234567, 20, 4), RequestSpec(61.5, 7, 1)]
    sessions = C.request_sessions(specs)
    assert [s.arrival_s for s in sessions] == [0.0, 0.1234567, 61.5]
    assert [(s.nodes[0].prompt_tokens, s.nodes[0].output_tokens) for s in sessions] == [(10, 3), (20, 4), (7, 1)]


def test_replay_of_one_request_matches_the_profile_by_hand():
    prof = load_profile("llama-3.1-8b_a100-40gb")
    lat = prof.latency
    sim = C.simulate_replay(prof, [RequestSpec(0.0, 100, 3)], seed=0, max_num_seqs=4, max_num_batched_tokens=512,
                            kv_capacity_tokens=4096)
    ttft = lat.step_s(100, 100 * 100, 0, 0)
    e2e = ttft + lat.step_s(0, 0, 1, 101) + lat.step_s(0, 0, 1, 102)
    assert sim["ttft_s"][0] == pytest.approx(ttft) and sim["e2e_s"][0] == pytest.approx(e2e)


def test_default_rate_targets_a_quarter_of_the_batch():
    lat = load_profile("llama-3.1-8b_a100-40gb").latency
    rate = C.default_rate(lat, 128, 64, 16)
    e2e = 64 * lat.step_s(0, 0, 4, 4 * 160) + 4 * lat.prefill_part_s(128, 128 * 128)
    assert rate == pytest.approx(4 / e2e)


# ------------------------------------------------------------------------------ power series

def test_loop_steps_become_step_trace_rows():
    from agentwatt.validate.serve import ServeResult, trace_rows
    ps = PowerSeries(t0=np.array([0.0, 1.0]), t1=np.array([1.0, 2.0]), watts=np.array([100.0, 200.0]), source="x")
    steps = [StepRecord(0.0, 0.4, 0.45, 0.3, 8, 64, 0, 0, [(0, 8)], span_s=0.5),
             StepRecord(0.5, 1.4, 1.0, 0.8, 0, 0, 2, 30, [(0, 1), (1, 1)])]   # no span: end - start
    res = ServeResult(specs=[], first_token_s=np.array([]), finish_s=np.array([]), steps=steps, clock="wall",
                      timer="perf_counter", wall_s=2.0, kv_capacity_tokens=64, power=ps)
    rows = trace_rows(res)
    assert rows[0][:6] == (0.0, 0.5, 8, 64, 0, 0) and rows[0][6] == pytest.approx(50.0)
    assert rows[1][:6] == (0.5, pytest.approx(0.9), 0, 0, 2, 30) and rows[1][6] == pytest.approx(50.0 + 80.0)


def test_power_series_integrates_and_attributes_by_tokens():
    ps = PowerSeries(t0=np.array([0.0, 1.0]), t1=np.array([1.0, 2.0]), watts=np.array([100.0, 200.0]), source="x")
    assert ps.energy_j(0.5, 1.5) == pytest.approx(150.0) and ps.energy_j(1.5, 2.5) is None
    steps = [StepRecord(0.0, 1.0, 1.0, 1.0, 3, 9, 1, 5, [(0, 3), (1, 1)])]
    e, why = attribute_energy(steps, ps, 2)
    assert why is None and e == pytest.approx([75.0, 25.0])


def test_power_sampler_with_a_fake_meter_reads_its_watts():
    with PowerSampler(FakeMeter(80.0), hz=50.0) as s:
        import time
        time.sleep(0.3)
    ps = s.series
    assert len(ps.t0) >= 5 and np.allclose(ps.watts, 80.0) and np.all(ps.t1 > ps.t0)


# ------------------------------------------------------------------------------ end to end

def test_short_check_on_cpu_runs_and_reports_finite_errors(small_profile, tmp_path, run_cli):
    """Through the CLI: `agentwatt calibrate check PROFILE --minutes 0.1 ... --out report.json`."""
    import json

    out, steps = tmp_path / "report.json", tmp_path / "steps.csv"
    res = run_cli(["calibrate", "check", small_profile, "--minutes", SHORT.minutes, "--prompt-tokens",
                   SHORT.prompt_tokens, "--output-tokens", SHORT.output_tokens, "--out", out, "--steps", steps,
                   "--no-progress"])
    print("\n" + res.output)
    assert res.exit_code == 0, res.output
    text = res.output
    assert "latency error (profile):" in text and "TTFT p50" in text and f"wrote {out}" in text
    assert "energy per request: unavailable: " in text
    r = json.loads(out.read_text())
    assert r["clock"] == "virtual" and r["step_timer"] == "thread_cpu" and r["settings"]["requests"] >= 10
    for block in ("latency", "latency_loop_adjusted"):
        for k in ("ttft_s", "e2e_s"):
            err = r[block][k]["error"]
            assert math.isfinite(err["p50"]) and math.isfinite(err["p99"])
            assert abs(err["p50"]) <= P50_BOUND, (block, k, err)
    assert r["energy"]["available"] is False and r["energy"]["reason"]   # no RAPL here: said, never 0 J
    assert set(r["goals"]) >= {"profile.ttft_s.p50", "profile.e2e_s.p99", "loop_adjusted.e2e_s.p50"}
    assert r["loop"]["steps_vs_profile"]["all"]["steps"] == r["loop"]["steps"] > 0
    # the step-trace profile, fitted to the loop's first steps, beside the micro-benchmark one on the rest
    t = r["step_trace_profile"]
    assert t["available"], t
    assert t["fit_steps"] + t["check_steps"] == r["loop"]["steps"] and t["check_requests"] > 0
    assert t["form"] in ("additive", "smooth roofline") and not t["power"]["available"]
    for label in ("microbenchmark", "step_trace"):
        assert math.isfinite(t["steps_after_split"][label]["mape"])
        for k in ("ttft_s", "e2e_s"):
            assert math.isfinite(t["latency_after_split"][label][k]["error"]["p50"])
    # fitted to this machine's own serving steps, it is no worse than the micro-benchmark profile; both are
    # wall-clock measurements on a shared CPU, so allow 10 % for noise (a loaded CI run gave 12.07 vs 12.03 %)
    assert t["steps_after_split"]["step_trace"]["mape"] <= 1.10 * t["steps_after_split"]["microbenchmark"]["mape"]
    assert "step-trace profile (" in text and "micro-benchmark" in text and "step time MAPE" in text
    assert "step_trace.e2e_s.p50" in r["goals"] and f"wrote {steps}" in text
    # the loop's step trace is the fit-trace format, one row per loop step
    from agentwatt.core.steptrace import read_step_trace
    tr = read_step_trace(steps)
    assert len(tr) == r["loop"]["steps"] and tr.energy_rows == 0


def test_wall_clock_check_with_a_meter_compares_energy_and_power(small_profile):
    r = C.check(small_profile, "cpu", C.CheckSettings(minutes=0.06, rate_per_s=5.0, prompt_tokens=32,
                                                      output_tokens=12, seed=1),
                meter=FakeMeter(100.0, source="rapl"))   # a meter: wall clock (energy happens in real time)
    assert r["clock"] == "wall"
    e = r["energy"]
    assert e["available"] and e["measured_j_per_request"] > 0 and math.isfinite(e["error"])
    assert r["power"]["available"] and r["power"]["seconds_compared"] >= 2
    # the meter reads a constant 100 W, and the profile was calibrated on that meter: both series are
    # 100 W throughout, and the energy per request agrees to the rounding of the fit
    assert r["power"]["mean_measured_w"] == pytest.approx(100.0, rel=1e-6)
    assert r["power"]["mean_simulated_w"] == pytest.approx(100.0, rel=0.02)
    assert e["meter"] == "rapl" and abs(r["power"]["energy_error_pct"]) < 5.0
    assert "energy_per_request" in r["goals"] and "acf_r2" in r["goals"]
    t = r["step_trace_profile"]   # metered steps: the step-trace profile has a power model too
    if t["available"]:
        assert t["power"]["available"] and t["energy_after_split"]["available"]


def test_check_refuses_profiles_it_cannot_rebuild(tmp_path):
    with pytest.raises(InputError, match="source = 'published/estimate': expected a measured profile"):
        C.check("llama-3.1-8b_a100-40gb")
    with pytest.raises(InputError, match="nope.json: profile not found"):
        C.check(tmp_path / "nope.json")


def test_bad_settings_are_one_line_errors(small_profile):
    with pytest.raises(InputError, match="--minutes = 0: expected a number > 0"):
        C.check(small_profile, settings=C.CheckSettings(minutes=0))
    with pytest.raises(InputError, match="--rate = -1"):
        C.check(small_profile, settings=C.CheckSettings(rate_per_s=-1))
