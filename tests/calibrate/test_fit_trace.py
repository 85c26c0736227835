"""`calibrate fit-trace`: the step-trace format (loader and its one-line errors), the fit of both model
forms, and the round trip: a trace the simulator writes with a bundled profile fits back to it."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from agentwatt.calibrate import fit_trace as F
from agentwatt.core import step
from agentwatt.core.errors import InputError
from agentwatt.core.profile import load_profile
from agentwatt.core.steptrace import COLUMNS, read_step_trace, write_step_trace
from agentwatt.sim.run import run
from agentwatt.sim.scenario import scenario_from_dict

HEADER = ",".join(COLUMNS)
# a grid of step work inside what the round-trip workload covers: prompt chunks up to the 2,048-token
# budget with and without a cached prefix, decode batches 1..64 at short and long contexts, mixed steps
GRID = sorted({(P, P * (cached + P), D, D * ctx)
               for P in (0, 1, 64, 512, 2048) for cached in (0, 4096)
               for D in (0, 1, 8, 32, 64) for ctx in (256, 2048) if P + D > 0})


def _scenario(profile: str, seed: int = 7):
    """Chatbot + ReAct agents on one replica, loaded enough for decode batches of 1..64 and prompts
    split into chunks of the step budget."""
    return scenario_from_dict({
        "name": "fit-trace round trip", "profile": profile,
        "run": {"seed": seed, "duration_s": 60, "drain_timeout_s": 600, "step_trace": True},
        "engine": {"max_num_seqs": 64, "max_num_batched_tokens": 2048},
        "workload": [{"agent": "chatbot-sharegpt", "rate_per_s": 6.0}, {"agent": "react-hotpotqa", "rate_per_s": 2.0}],
    }, where="round trip")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """(original profile, steps.csv written by the simulator)."""
    orig = load_profile("llama-3.1-8b_h100")
    res = run(_scenario("llama-3.1-8b_h100"))
    out = tmp_path_factory.mktemp("fit-trace")
    res.write(out, plots=False)
    return orig, out / "steps.csv", res


def grid_error(a, b) -> float:
    return max(abs(a.step_s(*g) - b.step_s(*g)) / b.step_s(*g) for g in GRID)


# ------------------------------------------------------------------------------ round trip

def test_simulated_trace_covers_the_grid(simulated):
    _, _, res = simulated
    st = res.steps
    d, p = st["decode_seqs"], st["prefill_tokens"]
    assert d.max() == 64 and (d == 1).sum() > 50 and (d >= 60).sum() > 50
    assert ((p > 0) & (d > 0)).sum() > 100                          # mixed prefill + decode steps
    assert (p + d >= 2000).sum() > 0                                # steps at the token budget (chunked prompts)
    assert (st["prefill_attn"] > p * p).sum() > 100                 # chunks after a cached prefix


def test_round_trip_recovers_the_profile_within_2_percent(simulated, tmp_path):
    orig, steps, _ = simulated
    prof = F.fit_trace(read_step_trace(steps), name="rt", model=orig.model, hardware=orig.hardware)
    err = grid_error(prof.latency, orig.latency)
    print(f"\nround trip: form {prof.provenance['form']}, largest step-time difference on {len(GRID)} grid points "
          f"{100 * err:.2e} %; forms {prof.provenance['forms']}")
    assert err <= 0.02
    assert prof.provenance["form"] == "smooth roofline"
    assert prof.latency.fit.holdout_n_points > 0 and prof.latency.fit.holdout_mape < 0.001
    # power: the activity model comes back too (steps at the TDP are left out of its fit)
    pw, po = prof.power, orig.power
    assert pw.available and pw.source == "step_trace"
    for k in ("idle_w", "compute_w", "memory_w"):
        assert getattr(pw, k) == pytest.approx(getattr(po, k), rel=0.02), k
    tr = prof.provenance["step_trace"]
    assert tr["file"] == "steps.csv" and tr["rows"] == len(read_step_trace(steps)) and tr["rows_with_energy"] == tr["rows"]


def test_round_trip_of_an_additive_profile_picks_the_additive_form(tmp_path):
    orig = load_profile("llama-3.1-8b_a100-40gb")
    lat = orig.latency
    additive = replace(orig, latency=replace(lat, overhead_s=lat.overhead_s + lat.weight_s, weight_s=0.0, token_s=0.0,
                                             prefill_token_s=lat.prefill_token_s + lat.token_s,
                                             decode_seq_s=lat.decode_seq_s + lat.token_s))
    res = run(_scenario("llama-3.1-8b_a100-40gb", seed=3), profile=additive)
    res.write(tmp_path, plots=False)
    prof = F.fit_trace(read_step_trace(tmp_path / "steps.csv"), name="rt", model=orig.model, hardware=orig.hardware)
    assert grid_error(prof.latency, additive.latency) <= 0.02
    assert prof.latency.weight_s == 0.0 and prof.latency.token_s == 0.0     # the tie goes to the simpler form


def test_vectorised_prediction_is_the_step_predictor(simulated):
    orig, steps, _ = simulated
    d = F.trace_arrays(read_step_trace(steps))
    pred = F.predict(orig.latency, d)
    exact = [step.step_s(orig.latency, *r) for r in zip(d.P, d.A, d.D, d.C)]
    assert np.allclose(pred, exact, rtol=1e-12, atol=0)
    assert np.allclose(pred, d.t, rtol=1e-9)      # the simulator's step times are the profile's


def test_power_is_unavailable_without_energy(simulated, tmp_path):
    orig, steps, _ = simulated
    rows = [(*r[:6], None) for r in read_step_trace(steps).rows]
    path = write_step_trace(tmp_path / "no-energy.csv", rows)
    prof = F.fit_trace(read_step_trace(path), name="x", model=orig.model, hardware=orig.hardware)
    assert not prof.power.available and "no energy_j values" in prof.power.reason
    # a given idle power is kept
    prof = F.fit_trace(read_step_trace(steps), name="x", model=orig.model, hardware=orig.hardware, idle_w=94.5)
    assert prof.power.idle_w == 94.5 and prof.power.memory_w == pytest.approx(orig.power.memory_w, rel=0.02)


def test_holdout_is_the_last_fifth_in_time(tmp_path):
    rows = [(float(40 - i), 0.01 + 0.001 * (i % 3), 0, 0, 1 + i % 3, 100 * (1 + i % 3), None) for i in range(40)]
    d = F.trace_arrays(read_step_trace(write_step_trace(tmp_path / "s.csv", rows)))
    assert d.holdout.sum() == 8 and np.all(np.diff(d.start) >= 0) and d.start[d.holdout].min() > d.start[~d.holdout].max()


# ------------------------------------------------------------------------------ the loader

@pytest.mark.parametrize("text, message", [
    ("", "s.csv: empty file: expected a header line start_s,duration_s"),
    ("# only a comment\n", "s.csv: empty file"),
    (HEADER + "\n", "s.csv: no step rows after the header"),
    ("start_s,duration_s,prefill_tokens\n0,1,2\n", "s.csv:1: header lacks prefill_attn, decode_seqs, decode_ctx"),
    (HEADER + "\n0,0.01,0,0,1,5\n", "s.csv:2: 6 fields: expected 7 as in the header"),
    (HEADER + "\n0,-0.01,0,0,1,5,\n", "s.csv:2:2: duration_s = '-0.01': expected a number > 0"),
    (HEADER + "\n0,0,0,0,1,5,\n", "s.csv:2:2: duration_s = '0': expected a number > 0"),
    (HEADER + "\nx,0.01,0,0,1,5,\n", "s.csv:2:1: start_s = 'x': expected a number >= 0"),
    (HEADER + "\n0,0.01,1.5,2,1,5,\n", "s.csv:2:3: prefill_tokens = '1.5': expected an integer >= 0"),
    (HEADER + "\n0,0.01,0,0,-1,5,\n", "s.csv:2:5: decode_seqs = '-1': expected an integer >= 0"),
    (HEADER + "\n0,0.01,0,0,1,nan,\n", "s.csv:2:6: decode_ctx = 'nan': expected an integer >= 0"),
    (HEADER + "\n0,0.01,0,0,1,5,-3\n", "s.csv:2:7: energy_j = '-3': expected a number >= 0"),
    (HEADER + "\n0,0.01,0,0,0,0,\n", "s.csv:2:3: prefill_tokens = 0 and decode_seqs = 0: expected a step"),
    (HEADER + "\n0,0.01,10,5,0,0,\n", "s.csv:2:4: prefill_attn = 5 with prefill_tokens = 10: expected the sum"),
    (HEADER + "\n0,0.01,0,7,1,5,\n", "s.csv:2:4: prefill_attn = 7 with prefill_tokens = 0"),
    (HEADER + "\n0,0.01,0,0,4,3,\n", "s.csv:2:6: decode_ctx = 3 with decode_seqs = 4: expected the sum"),
    ("start_s,start_s,duration_s,prefill_tokens,prefill_attn,decode_seqs,decode_ctx\n", "s.csv:1: column start_s named twice"),
])
def test_bad_traces_are_one_line_errors(write_file, text, message):
    path = write_file(text, "s.csv")
    with pytest.raises(InputError) as e:
        read_step_trace(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_loader_reads_columns_by_name_skips_comments_and_keeps_empty_energy(write_file):
    path = write_file("# from my engine\nreplica,decode_ctx,decode_seqs,prefill_attn,prefill_tokens,duration_s,start_s\n"
                      "0,300,2,0,0,0.01,1.5\n# a comment between rows\n1,0,0,64,8,0.02,0\n\n", "s.csv")
    tr = read_step_trace(path)
    assert tr.rows == ((1.5, 0.01, 0, 0, 2, 300, None), (0.0, 0.02, 8, 64, 0, 0, None))
    assert not tr.has_energy_column and tr.energy_rows == 0
    path = write_file(HEADER + "\n0,0.01,0,0,1,5,\n0.01,0.01,0,0,1,6,2.5\n", "e.csv")
    assert [r[6] for r in read_step_trace(path).rows] == [None, 2.5]


def test_loader_refuses_binary_and_missing_files(write_file, tmp_path):
    with pytest.raises(InputError, match="not UTF-8 text"):
        read_step_trace(write_file(b"\xff\xfe\x00bad", "b.csv"))
    with pytest.raises(InputError, match="step trace not found"):
        read_step_trace(tmp_path / "missing.csv")


def test_too_few_rows_to_hold_out(write_file):
    tr = read_step_trace(write_file(HEADER + "\n" + "".join(f"{i},0.01,0,0,1,5,\n" for i in range(5)), "s.csv"))
    with pytest.raises(InputError, match="5 step rows: expected at least 20"):
        F.trace_arrays(tr)


def test_written_trace_reads_back_exactly(tmp_path):
    rows = [(0.1 * i, 1 / 3 + i, i, i * (i + 7), 2, 2 * (i + 10), None if i % 2 else i / 7) for i in range(1, 9)]
    path = write_step_trace(tmp_path / "w.csv", rows, comment="two\nlines")
    assert read_step_trace(path).rows == tuple(tuple(r) for r in rows)
    assert path.read_text().startswith("# two\n# lines\n" + HEADER + "\n")


# ------------------------------------------------------------------------------ the command

def test_cli_fits_a_trace_into_a_profile_the_simulator_loads(simulated, tmp_path, run_cli):
    orig, steps, _ = simulated
    out = tmp_path / "fitted.json"
    r = run_cli(["calibrate", "fit-trace", str(steps), "--model-shape", "llama-3.1-8b", "--gpu", "h100",
                 "--out", str(out), "--name", "my-engine"])
    assert r.exit_code == 0, r.output
    assert "smooth roofline" in r.output and "<- chosen" in r.output and f"wrote {out}" in r.output
    assert "power (step trace, " in r.output
    p = load_profile(out)
    assert p.name == "my-engine" and p.source == "measured" and p.model.name == "llama-3.1-8b"
    assert p.hardware.device_name == orig.hardware.device_name and p.hardware.tp == 1
    assert p.provenance["step_trace"]["file"] == "steps.csv" and p.provenance["model_shape_from"].startswith("model catalog")
    assert grid_error(p.latency, orig.latency) <= 0.02
    # the profile's hardware when the shape is a profile; --tp overrides it
    r = run_cli(["calibrate", "fit-trace", str(steps), "--model-shape", "llama-3.1-8b_h100", "--tp", "2",
                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    p = load_profile(out)
    assert p.hardware.tp == 2 and p.name == "steps-trace" and p.power.idle_w == pytest.approx(orig.power.idle_w / 2)


@pytest.mark.parametrize("args, expected", [
    (["missing.csv", "--model-shape", "llama-3.1-8b_h100", "--out", "x.json"],
     "error: missing.csv: step trace not found"),
    (["{steps}", "--model-shape", "llama-3.1-8b", "--out", "x.json"],
     "error: --model-shape 'llama-3.1-8b' is a model name: expected --gpu KEY too"),
    (["{steps}", "--model-shape", "gpt-9", "--gpu", "h100", "--out", "x.json"],
     "error: --model-shape 'gpt-9': neither a profile nor a catalog model"),
    (["{steps}", "--model-shape", "llama-3.1-8b", "--gpu", "tpu9", "--out", "x.json"], "error: --gpu 'tpu9'"),
    (["{steps}", "--model-shape", "llama-3.1-8b_h100", "--tp", "0", "--out", "x.json"],
     "error: --tp = 0: expected an integer >= 1"),
])
def test_cli_errors_are_one_line(simulated, run_cli, tmp_path, args, expected):
    from tests.helpers import one_error_line
    _, steps, _ = simulated
    args = [a.replace("{steps}", str(steps)).replace("x.json", str(tmp_path / "x.json")) for a in args]
    r = run_cli(["calibrate", "fit-trace", *args])
    assert r.exit_code == 2
    assert one_error_line(r).startswith(expected), r.output
