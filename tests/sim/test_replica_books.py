"""The replica's books (sim/books.py) directly, and a real Replica on a tiny profile: how a step's
joules are shared among its requests, how idle joules are shared among sessions waiting on tools,
that a decode block cut short by an arrival books exactly the steps that ran, and that the per-bin
channels integrate to the counted joules."""
from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import simpy

from agentwatt.core.profile import LatencyModel, PowerModel, load_profile
from agentwatt.core.step import StepCost, decode_block
from agentwatt.sim.batching import Request
from agentwatt.sim.books import ReplicaBooks
from agentwatt.sim.replica import Replica


def tiny_profile(power: bool = True):
    """A bundled profile with round latency coefficients and a simple power model (tp 1)."""
    p = load_profile("llama-3.1-8b_a100-40gb")
    lat = LatencyModel(overhead_s=0.01, prefill_token_s=0.001, prefill_attn_s=0.0, decode_seq_s=0.002,
                       decode_ctx_s=1e-6)
    pm = (PowerModel(available=True, source="test", idle_w=50.0, prefill_w=300.0, decode_base_w=200.0,
                     decode_log2_batch_w=0.0, max_w=None) if power
          else PowerModel(available=False, source="none", reason="no meter"))
    return replace(p, latency=lat, power=pm)


def make_replica(env, profile, *, skip=True, index=0, resolution_s=0.25):
    return Replica(env, index, profile, num_blocks=256, block_size=16, max_num_seqs=8, max_num_batched_tokens=512,
                   prefix_caching=False, resolution_s=resolution_s, step_skipping=skip)


def request(env, rid, prompt, output):
    return Request(rid, prompt, output, [], env.now, done=env.event())


# ----------------------------------------------------------------------------- the books alone

def test_step_joules_are_shared_by_tokens():
    books = ReplicaBooks(0, idle_w=50.0, resolution_s=1.0)
    a, b = SimpleNamespace(energy_j=0.0), SimpleNamespace(energy_j=0.0)
    plan = SimpleNamespace(items=[(a, 3), (b, 1)], prefill_tokens=3, decode_seqs=1, tokens=4)
    cost = StepCost(seconds=0.5, watts=400.0, clock_fraction=1.0)
    books.idle_ends(0.0)
    books.step_begins(0.0, cost, kv_used=7)
    books.step_ends(plan)
    assert a.energy_j == pytest.approx(0.75 * 200.0) and b.energy_j == pytest.approx(0.25 * 200.0)
    assert books.busy_energy_j == pytest.approx(200.0)
    assert (books.steps, books.prefill_tokens, books.decode_tokens) == (1, 3, 1)
    assert books.peak_kv_blocks == 7 and books.kv_block_seconds == pytest.approx(3.5)
    assert books.bins.total("capped_s") == 0.0


def test_capped_step_is_counted_as_capped_time():
    books = ReplicaBooks(0, idle_w=50.0, resolution_s=1.0)
    books.idle_ends(0.0)
    r = SimpleNamespace(energy_j=0.0)
    books.step_begins(0.0, StepCost(seconds=2.0, watts=300.0, clock_fraction=0.8), kv_used=1)
    books.step_ends(SimpleNamespace(items=[(r, 10)], prefill_tokens=10, decode_seqs=0, tokens=10))
    row = books.row()
    assert row["capped_s"] == pytest.approx(2.0) and row["busy_s"] == pytest.approx(2.0)
    assert r.energy_j == pytest.approx(600.0)


def test_idle_tool_joules_are_shared_equally_among_waiting_sessions():
    books = ReplicaBooks(0, idle_w=100.0, resolution_s=1.0)
    s1, s2 = {"idle_energy": 0.0}, {"idle_energy": 0.0}
    books.idle_begins(0.0)
    books.tool_wait_begins(s1, 1.0)          # [0, 1): empty
    books.tool_wait_begins(s2, 2.0)          # [1, 2): s1 alone
    books.tool_wait_begins(s2, 2.5)          # a second tool of s2: still one waiter
    books.tool_wait_ends(s1, 4.0)            # [2, 4): both, half each
    books.tool_wait_ends(s2, 4.5)            # s2 still waits on its other tool
    books.tool_wait_ends(s2, 5.0)            # [4, 5): s2 alone
    books.idle_ends(6.0)                     # [5, 6): empty
    assert s1["idle_energy"] == pytest.approx(100.0 + 100.0)
    assert s2["idle_energy"] == pytest.approx(100.0 + 100.0)
    assert books.idle_tool_energy_j == pytest.approx(400.0)
    assert books.idle_energy_j == pytest.approx(600.0)
    assert books.bins.total("idle_tool_s") == pytest.approx(4.0)
    assert books.bins.total("idle_empty_s") == pytest.approx(2.0)
    assert not books.tool_waiters


def test_tool_wait_during_a_step_is_idle_tool_time_only_once_the_replica_idles():
    books = ReplicaBooks(0, idle_w=100.0, resolution_s=1.0)
    s = {"idle_energy": 0.0}
    books.idle_ends(0.0)                     # busy from 0
    books.tool_wait_begins(s, 1.0)           # nothing to book: the replica is busy
    assert books.idle_energy_j == 0.0
    books.idle_begins(2.0)
    books.idle_ends(3.0)
    assert s["idle_energy"] == pytest.approx(100.0) and books.idle_tool_energy_j == pytest.approx(100.0)


def test_books_without_a_power_model_count_time_and_report_no_energy():
    books = ReplicaBooks(3, idle_w=None, resolution_s=1.0)
    r = SimpleNamespace(energy_j=0.0)
    books.idle_begins(0.0)
    books.idle_ends(1.0)
    books.step_begins(1.0, StepCost(seconds=0.5, watts=None, clock_fraction=1.0), kv_used=2)
    books.step_ends(SimpleNamespace(items=[(r, 4)], prefill_tokens=4, decode_seqs=0, tokens=4))
    row = books.row()
    assert row["replica"] == 3 and row["busy_s"] == pytest.approx(0.5) and r.energy_j == 0.0
    assert math.isnan(row["busy_energy_j"]) and math.isnan(row["idle_energy_j"])
    assert books.bins.total("idle_empty_s") == pytest.approx(1.0)


def test_close_books_the_steps_of_a_block_that_ended_by_the_deadline():
    books = ReplicaBooks(0, idle_w=50.0, resolution_s=1.0)
    blk = decode_block(tiny_profile().latency, 2, 400)
    cost = StepCost(seconds=blk.first, watts=200.0, clock_fraction=1.0)
    books.idle_ends(0.0)
    books.block_begins(0.0, cost, blk, 2)
    t_end = blk.end(5) + 0.5 * blk.first      # 5 steps ended, the 6th in progress
    books.close(t_end)
    assert books.steps == 5 and books.decode_tokens == 10
    assert books.busy_s == pytest.approx(t_end) and books.busy_energy_j == pytest.approx(200.0 * t_end)
    assert books.in_flight is None


# ----------------------------------------------------------------------------- a real replica

def _run_two_requests(skip: bool, sample_at: float):
    """A long decode on one replica; a second request arrives mid-way and cuts a decode block."""
    env = simpy.Environment()
    rep = make_replica(env, tiny_profile(), skip=skip)
    a = request(env, 0, 32, 100)
    seen = {}

    def drive():
        rep.submit(a)
        yield env.timeout(0.5)
        rep.submit(request(env, 1, 20, 3))
        yield env.timeout(sample_at - 0.5)
        seen.update(steps=rep.books.steps, decode=rep.books.decode_tokens, generated=a.num_generated,
                    busy=rep.books.busy_s)

    env.process(drive())
    env.run(until=10.0)
    rep.finish(10.0)
    return rep, a, seen


def test_decode_block_cut_by_an_arrival_books_exactly_the_steps_that_ran():
    # with step skipping the decode of A runs as one block; B's arrival at 0.5 s cuts it at the end
    # of the step in progress. Stepping one event per step is the reference.
    lat = tiny_profile().latency
    prefill = lat.overhead_s + 32 * lat.prefill_token_s                # A's prompt, first token
    blk = decode_block(lat, 1, 33)
    cut = blk.steps_started_by(0.5 - prefill)                          # the step in progress completes
    sample = prefill + blk.end(cut) + 1e-4                             # after the cut, inside B's first step
    rep_on, a_on, on = _run_two_requests(True, sample)
    rep_off, a_off, off = _run_two_requests(False, sample)
    assert on["steps"] == off["steps"] == 1 + cut
    assert on["decode"] == off["decode"] == cut
    assert on["generated"] == off["generated"] == 1 + cut
    assert on["busy"] == pytest.approx(off["busy"]) == pytest.approx(prefill + blk.end(cut))
    assert rep_on.books.events < rep_off.books.events                  # blocks did run
    for k in ("steps", "prefill_tokens", "decode_tokens", "preemptions"):
        assert rep_on.books.row()[k] == rep_off.books.row()[k]
    assert rep_on.books.busy_energy_j == pytest.approx(rep_off.books.busy_energy_j, rel=1e-12)
    assert a_on.finish_s == pytest.approx(a_off.finish_s) and a_on.energy_j == pytest.approx(a_off.energy_j)


@pytest.mark.parametrize("skip", [True, False])
def test_energy_bins_integrate_to_the_counted_joules(skip):
    env = simpy.Environment()
    rep = make_replica(env, tiny_profile(), skip=skip, resolution_s=0.1)
    reqs = []
    waiter = {"idle_energy": 0.0}

    def drive():
        for i, (t, p, o) in enumerate([(0.0, 40, 30), (0.05, 300, 5), (1.5, 64, 80)]):
            yield env.timeout(t - env.now)
            reqs.append(request(env, i, p, o))
            rep.submit(reqs[-1])
        yield env.timeout(3.0 - env.now)     # a session homed here waits on a tool while the replica idles
        rep.tool_wait_begins(waiter)
        yield env.timeout(1.0)
        rep.tool_wait_ends(waiter)

    env.process(drive())
    env.run(until=4.2)
    rep.finish(4.2)
    b = rep.books
    counted = b.busy_energy_j + b.idle_energy_j
    t, width, cols = b.bins.columns(4.2)
    assert float(cols["energy_j"].sum()) == pytest.approx(counted, rel=1e-12)
    assert b.bins.total("energy_j") == pytest.approx(counted, rel=1e-12)
    assert sum(r.energy_j for r in reqs) == pytest.approx(b.busy_energy_j, rel=1e-12)
    assert float(cols["busy_s"].sum()) == pytest.approx(b.busy_s, rel=1e-12)
    # every second of the run is busy, idle-tool or idle-empty, once
    split = cols["busy_s"] + cols["idle_tool_s"] + cols["idle_empty_s"]
    assert float(split.sum()) == pytest.approx(4.2, rel=1e-12)
    assert (abs(split - width) < 1e-9).all()
    assert waiter["idle_energy"] == pytest.approx(b.idle_tool_energy_j) == pytest.approx(50.0 * 1.0)
    assert all(r.finish_s is not None for r in reqs)


def test_counter_row_of_a_replica():
    env = simpy.Environment()
    rep = make_replica(env, tiny_profile(), index=2)
    rep.submit(request(env, 0, 40, 10))
    env.run(until=1.0)
    rep.finish(1.0)
    row = rep.counters()
    assert row["replica"] == 2 and row["outstanding"] == 0 and row["kv_blocks"] == 256
    assert row["steps"] == 10 and row["prefill_tokens"] == 40 and row["decode_tokens"] == 9
    assert row["busy_energy_j"] + row["idle_energy_j"] == pytest.approx(row["energy_bins_j"])
    assert row["peak_kv_blocks"] >= 3 and row["kv_block_seconds"] > 0
    assert set(row) >= {"busy_s", "events", "preemptions", "idle_tool_energy_j", "capped_s",
                        "kv_lookup_blocks", "kv_hit_blocks", "kv_pins_dropped_for_memory"}


def test_decode_block_books_its_kv_block_seconds_as_a_trapezoid():
    books = ReplicaBooks(0, idle_w=50.0, resolution_s=1.0)
    assert books.row()["events"] == 0 and books.row()["steps"] == 0
    blk = decode_block(tiny_profile().latency, 2, 400)
    cost = StepCost(seconds=blk.first, watts=200.0, clock_fraction=1.0)
    books.idle_ends(0.0)
    books.block_begins(0.0, cost, blk, 2)
    a, b = SimpleNamespace(energy_j=0.0), SimpleNamespace(energy_j=0.0)
    books.block_ends(SimpleNamespace(items=[(a, 1), (b, 1)]), 7, kv_used_before=10, kv_used_after=14)
    dt = blk.end(7)
    assert dt != 1.0 and books.kv_block_seconds == pytest.approx(0.5 * (10 + 14) * dt)
    assert books.peak_kv_blocks == 14 and books.steps == 7 and books.decode_tokens == 14
    assert a.energy_j == pytest.approx(b.energy_j) and a.energy_j + b.energy_j == pytest.approx(books.busy_energy_j)
